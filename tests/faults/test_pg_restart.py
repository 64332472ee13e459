"""A PostgreSQL restart under load (:mod:`bench.faults.pgrestart`): a real daemon on the tests'
own server, which is stopped for 30 s (the outage the target names) and started again while
clients predict and label."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.faults import pgrestart

from tests.pg import PostgresServer, restartable_postgres
from tests.unit.serving.helpers import build_adapter, build_base

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


server = pytest.fixture(name="server")(restartable_postgres)


def test_a_postgres_restart_under_load_loses_nothing_and_fails_no_prediction(
    tmp_path: Path, server: PostgresServer
) -> None:
    base = build_base(tmp_path / "base")
    adapter = build_adapter(base, tmp_path / "adapter")
    r = pgrestart.run(base, adapter, tmp_path / "work", server, outage_s=30.0)
    # Serving needs no store.
    assert r.predictions_ok > 30, "there was load"
    assert r.predictions_failed == {}
    assert r.readyz_probes > 40
    assert r.readyz_failed == 0
    # Every answered prediction reached the store once it was back, nothing dropped.
    assert r.max_queued_rows > 0, "the outage was seen by the writer"
    assert r.max_queued_rows < r.buffer_rows
    assert r.lost == 0
    assert r.dropped == {}
    assert r.backlog_written_s is not None
    # Feedback during the outage: a 503 naming the store, then stored when sent again.
    assert r.feedback_503 > 0, "feedback was sent during the outage"
    assert r.feedback_503_naming_store == r.feedback_503, r.detail_503
    assert r.feedback_other == {}
    assert r.retried_failed == 0
    assert r.feedback_lost == 0
    # The control loop survives, one leader at most, the lock taken again.
    assert r.check_after_s is not None
    assert r.leader_after_s is not None
    assert r.max_leaders == 1
    assert r.unclean_exits == 0
    # The outage is logged in one line per failed step, not a traceback per check.
    assert r.tracebacks == 0, r.first_traceback
