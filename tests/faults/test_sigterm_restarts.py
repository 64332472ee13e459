"""20 SIGTERM restarts of a real ``adaptd serve`` process under load (:mod:`bench.faults.restarts`):
every prediction answered 200 and every feedback answered 200 is in the store afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.faults import restarts

from tests.unit.serving.helpers import build_adapter, build_base

pytestmark = pytest.mark.slow


def test_twenty_sigterm_restarts_under_load_lose_nothing_accepted(tmp_path: Path) -> None:
    base = build_base(tmp_path / "base")
    adapter = build_adapter(base, tmp_path / "adapter")
    result = restarts.run(base, adapter, tmp_path / "work", restarts=20, clients=3)
    assert result.accepted_predictions > 20 * 3, "there was load"
    assert result.accepted_feedback > 20, "and feedback"
    assert result.lost_predictions == 0
    assert result.lost_feedback == 0
    assert result.bad_exits == 0
