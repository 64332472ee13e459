"""ADWIN golden tests: River's documented example and River's detections on seeded streams."""

from __future__ import annotations

import random

import numpy as np
import pytest
from river import drift

from adaptd.monitoring.detectors.adwin import Adwin, detections


def river_detections(stream: list[float], **params: float) -> list[int]:
    detector = drift.ADWIN(**params)
    out = []
    for i, x in enumerate(stream):
        detector.update(x)
        if detector.drift_detected:
            out.append(i)
    return out


def test_rivers_documented_example() -> None:
    rng = random.Random(12345)
    stream = rng.choices([0, 1], k=1000) + rng.choices(range(4, 8), k=1000)
    assert detections(stream) == [1023]


@pytest.mark.parametrize("seed", range(4))
def test_same_detections_as_river_on_error_streams(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stream = np.concatenate(
        [rng.random(6000) < 0.1, rng.random(4000) < 0.2, rng.random(2000) < 0.05]
    )
    values = stream.astype(float).tolist()
    ours = detections(values)
    assert ours == river_detections(values)
    assert ours  # the shifts are found


def test_same_detections_as_river_with_clock_one_and_gaussian_values() -> None:
    rng = np.random.default_rng(7)
    values = np.concatenate([rng.normal(0, 1, 1500), rng.normal(0.8, 1, 1500)]).tolist()
    assert detections(values, clock=1, delta=0.01) == river_detections(values, clock=1, delta=0.01)


def test_estimation_and_width_follow_the_stream() -> None:
    detector = Adwin()
    for x in [1.0] * 50:
        detector.update(x)
    assert detector.width == 50 and detector.estimation == 1.0


def test_bad_delta_is_rejected() -> None:
    with pytest.raises(ValueError, match="delta"):
        Adwin(delta=0.0)
