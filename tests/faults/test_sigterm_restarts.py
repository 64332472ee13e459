"""SIGTERM restarts of a real ``adaptd serve`` process under load (:mod:`bench.faults.restarts`):
every prediction answered 200 and every feedback answered 200 is in the store afterwards.

CI runs 8 restarts; the 20 the README reports run under ``make test-long`` (and in
``python -m bench.faults``). Each round is mostly the daemon's start (importing torch, loading
the model): 20 rounds took 294-568 s of CI's 30 minutes on 2 cores, 8 rounds keep the same
stop path under load at less than half of that.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.faults import restarts

from tests.unit.serving.helpers import build_adapter, build_base

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "rounds", [8, pytest.param(20, marks=pytest.mark.long)], ids=lambda n: f"{n}-restarts"
)
def test_sigterm_restarts_under_load_lose_nothing_accepted(tmp_path: Path, rounds: int) -> None:
    base = build_base(tmp_path / "base")
    adapter = build_adapter(base, tmp_path / "adapter")
    result = restarts.run(base, adapter, tmp_path / "work", restarts=rounds, clients=3)
    assert result.accepted_predictions > rounds * 3, "there was load"
    assert result.accepted_feedback > rounds, "and feedback"
    assert result.lost_predictions == 0
    assert result.lost_feedback == 0
    assert result.bad_exits == 0
