"""The demo's real domain shift (movie reviews -> tweets) through one full monitoring pass, the
label-free accuracy estimate against the labelled one, and 30 simulated days of stable checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from adaptd.monitoring.runner import run_checks
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.signals import Status
from bench.monitoring.data import Scenario, window_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)
#: the signals a retrain policy would watch without labels
LABEL_FREE = (
    "drift.text.share",
    "drift.embedding.auc",
    "drift.embedding.share",
    "drift.prediction.jsd",
    "drift.confidence.wasserstein",
)


def shift(s: Scenario, window: int) -> dict[str, Any]:
    settings = MonitorsSettings(min_samples=200)
    ref = window_of(s, s.movies_test[:window])
    cur = window_of(s, s.tweets[:window])
    signals = {x.name: x for x in run_checks(ref, cur, settings, now=NOW)}
    est = signals["performance.estimated_accuracy"]
    acc = signals["performance.accuracy"]
    return {
        "reference_rows": ref.n,
        "current_rows": cur.n,
        "label_free_drifted": [n for n in LABEL_FREE if signals[n].status is Status.DRIFT],
        "values": {n: signals[n].value for n in LABEL_FREE},
        "estimated_accuracy": est.value,
        "labelled_accuracy": acc.value,
        "reference_accuracy": acc.reference_value,
        "estimate_error_points": None
        if est.value is None or acc.value is None
        else 100 * abs(est.value - acc.value),
    }


def stable_days(s: Scenario, days: int, window: int) -> dict[str, Any]:
    """One check a day, each comparing fresh held-out movie reviews with the reference."""
    settings = MonitorsSettings(min_samples=200)
    # held-out reviews on both sides (the model's training rows would make the reference look
    # better than any live traffic); days draw from reviews the reference does not contain
    ref = window_of(s, s.movies_test[:window])
    pool = s.movies_test[window:]
    trips: dict[str, int] = {}
    for day in range(days):
        rng = np.random.default_rng(1000 + day)
        cur = window_of(s, [pool[i] for i in rng.permutation(len(pool))[:window]])
        for x in run_checks(ref, cur, settings, now=NOW + timedelta(days=day)):
            if x.status is Status.DRIFT:
                trips[x.name] = trips.get(x.name, 0) + 1
    return {
        "days": days,
        "window": window,
        "drift_verdicts_by_signal": trips,
        "label_free_days_with_drift": max((trips.get(n, 0) for n in LABEL_FREE), default=0),
    }
