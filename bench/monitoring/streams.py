"""Detection quality on seeded Bernoulli error streams: adaptd's ADWIN against River's ADWIN.

Each stream runs ``stable`` samples at error rate 0.10, then switches to ``p2``. Delay is counted
in labelled samples after the switch; a detection before it is a false alarm; none within
``after`` samples of it is a miss. False alarms per million come from separate all-stable streams.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
from river import drift

from adaptd.monitoring.detectors.adwin import Adwin

Detector = Callable[[], Any]


class _River:
    def __init__(self) -> None:
        self.d = drift.ADWIN()

    def update(self, x: float) -> bool:
        self.d.update(x)
        return bool(self.d.drift_detected)


DETECTORS: dict[str, Detector] = {"adaptd": Adwin, "river": _River}


def _first_after(detector: Any, stream: list[float], start: int) -> tuple[int | None, int]:
    """(delay of the first detection at or after ``start``, detections before ``start``)."""
    early = 0
    for i, x in enumerate(stream):
        if detector.update(x):
            if i < start:
                early += 1
            else:
                return i - start, early
    return None, early


def delays(p2: float, *, seeds: int, stable: int, after: int) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, make in DETECTORS.items():
        found: list[int] = []
        misses = 0
        early = 0
        t0 = time.perf_counter()
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            stream = (
                np.concatenate([rng.random(stable) < 0.10, rng.random(after) < p2])
                .astype(float)
                .tolist()
            )
            delay, before = _first_after(make(), stream, stable)
            early += before
            if delay is None:
                misses += 1
            else:
                found.append(delay)
        elapsed = time.perf_counter() - t0
        out[name] = {
            "median_delay": float(np.median(found)) if found else None,
            "misses": misses,
            "seeds": seeds,
            "false_alarms_before_shift": early,
            "us_per_update": 1e6 * elapsed / (seeds * (stable + after)),
        }
    return out


def false_alarms_per_million(*, samples: int, seed: int = 99) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    stream = (rng.random(samples) < 0.10).astype(float).tolist()
    out = {}
    for name, make in DETECTORS.items():
        detector = make()
        alarms = sum(1 for x in stream if detector.update(x))
        out[name] = alarms * 1_000_000 / samples
    return out
