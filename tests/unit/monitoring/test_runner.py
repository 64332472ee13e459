from __future__ import annotations

import pytest

from adaptd.monitoring.detectors import embedding
from adaptd.monitoring.runner import run_checks
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.signals import Status
from tests.unit.monitoring.factory import NOW, window


def test_a_failing_detector_becomes_error_signals_and_the_rest_still_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def boom(*args: object) -> list[object]:
        raise RuntimeError("singular matrix")

    monkeypatch.setattr(embedding, "embedding_drift", boom)
    signals = {
        s.name: s
        for s in run_checks(
            window(300, seed=1), window(300, seed=2), MonitorsSettings(min_samples=100), now=NOW
        )
    }
    for name in ("drift.embedding.share", "drift.embedding.auc"):
        assert signals[name].status is Status.ERROR
        assert "singular matrix" in signals[name].details["reason"]
    assert signals["drift.prediction.jsd"].has_verdict
    assert (
        signals["drift.prediction.jsd"].ts == NOW
        and signals["drift.prediction.jsd"].adapter == "v1"
    )
