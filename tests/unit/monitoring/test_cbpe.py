from __future__ import annotations

import pytest

from adaptd.monitoring.detectors.cbpe import estimated_accuracy
from adaptd.signals import Status
from tests.unit.monitoring.factory import context, window


def test_estimate_tracks_labelled_accuracy_on_the_same_distribution() -> None:
    (s,) = estimated_accuracy(
        context(), window(2000, seed=1, error_rate=0.15), window(2000, seed=2, error_rate=0.15)
    )
    assert s.status is Status.OK
    assert s.value == pytest.approx(s.details["labelled_accuracy"], abs=0.03)
    assert s.reference_value == pytest.approx(0.85, abs=0.03)


def test_confidence_collapse_lowers_the_estimate_within_three_points() -> None:
    ref = window(3000, seed=1, calibrated=True, confidence=2.5)
    cur = window(3000, seed=2, calibrated=True, confidence=0.8)
    (s,) = estimated_accuracy(context(), ref, cur)
    assert s.status is Status.DRIFT
    assert s.value < s.reference_value - 0.05
    assert s.value == pytest.approx(s.details["labelled_accuracy"], abs=0.03)


def test_without_current_labels_there_is_still_an_estimate() -> None:
    (s,) = estimated_accuracy(context(), window(2000, seed=1), window(2000, seed=2, labelled=0.0))
    assert s.status is Status.OK
    assert "labelled_accuracy" not in s.details
    assert s.n_current == 2000


def test_needs_labelled_reference() -> None:
    (s,) = estimated_accuracy(context(), window(2000, seed=1, labelled=0.0), window(500, seed=2))
    assert s.status is Status.INSUFFICIENT_DATA
    assert s.n_reference == 0
