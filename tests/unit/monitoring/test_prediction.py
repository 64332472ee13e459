from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import distance

from adaptd.monitoring.detectors.prediction import prediction_drift, psi
from adaptd.signals import Status
from tests.unit.monitoring.factory import by_name, context, window


def test_label_mix_shift_golden() -> None:
    ref, cur = window(1000, seed=1, positive_share=0.5), window(1000, seed=2, positive_share=0.8)
    s = by_name(prediction_drift(context(), ref, cur))
    ref_shares = np.bincount(ref.predicted, minlength=2) / ref.n
    cur_shares = np.bincount(cur.predicted, minlength=2) / cur.n
    assert s["drift.prediction.jsd"].value == pytest.approx(
        distance.jensenshannon(ref_shares, cur_shares)
    )
    assert s["drift.prediction.jsd"].status is Status.DRIFT
    assert s["drift.prediction.psi"].status is Status.DRIFT
    assert s["drift.prediction.chi2_p"].status is Status.DRIFT
    assert s["drift.prediction.chi2_p"].value < 1e-6


def test_psi_known_value() -> None:
    # 0.1*ln(0.6/0.5) + (-0.1)*ln(0.4/0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.6, 0.4])) == pytest.approx(
        0.1 * np.log(1.2) - 0.1 * np.log(0.8)
    )


def test_confidence_collapse_is_drift() -> None:
    s = by_name(
        prediction_drift(context(), window(800, seed=1), window(800, seed=2, confidence=0.2))
    )
    assert s["drift.confidence.wasserstein"].status is Status.DRIFT
    assert s["drift.entropy.wasserstein"].status is Status.DRIFT
    stable = by_name(prediction_drift(context(), window(800, seed=1), window(800, seed=3)))
    assert {x.status for x in stable.values()} == {Status.OK}


def test_nan_probabilities_are_an_error_naming_the_count() -> None:
    cur = window(300, seed=2)
    probs = cur.probabilities.copy()
    probs[:7] = np.nan
    broken = dataclasses.replace(cur, probabilities=probs)
    signals = prediction_drift(context(), window(300, seed=1), broken)
    assert {x.status for x in signals} == {Status.ERROR}
    assert "7 current" in signals[0].details["reason"]


def test_one_class_current_window_is_a_verdict() -> None:
    s = by_name(
        prediction_drift(context(), window(500, seed=1), window(500, seed=2, positive_share=1.0))
    )
    assert s["drift.prediction.jsd"].status is Status.DRIFT
    assert s["drift.prediction.psi"].value is not None and np.isfinite(
        s["drift.prediction.psi"].value
    )
