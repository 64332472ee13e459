"""Concept drift: the labelled error stream through ADWIN.

The reference window's labelled errors warm the detector up (they are the "before"); a detection
while the current window's errors stream through means the error rate changed inside or at the
start of the current window. Stateless across checks: every check replays its own windows, so a
restart or a second control instance gives the same answer.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adaptd.monitoring.detectors.adwin import Adwin
from adaptd.monitoring.detectors.base import CheckContext, insufficient, verdict
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

NAMES = ("concept.error_rate", "concept.drift")


def concept_drift(ctx: CheckContext, reference: Window, current: Window) -> list[Signal]:
    ref_mask, cur_mask = reference.labelled, current.labelled
    ref_errors = (reference.predicted[ref_mask] != reference.y_true[ref_mask]).astype(np.float64)
    cur_errors = (current.predicted[cur_mask] != current.y_true[cur_mask]).astype(np.float64)
    n_ref, n_cur = len(ref_errors), len(cur_errors)
    if n_cur < ctx.settings.min_samples:
        return [insufficient(ctx, n, n_reference=n_ref, n_current=n_cur) for n in NAMES]
    rate = float(cur_errors.mean())
    ref_rate = float(ref_errors.mean()) if n_ref else None
    detector = Adwin(delta=ctx.settings.adwin_delta)
    for x in ref_errors:
        detector.update(x)
    fired_at = [i for i, x in enumerate(cur_errors) if detector.update(x)]
    drifted = bool(fired_at)
    sizes: dict[str, Any] = {"n_reference": n_ref, "n_current": n_cur}
    return [
        verdict(
            ctx,
            "concept.error_rate",
            rate,
            drifted=drifted,
            reference_value=ref_rate,
            **sizes,
        ),
        verdict(
            ctx,
            "concept.drift",
            1.0 if drifted else 0.0,
            drifted=drifted,
            **sizes,
            details={"detections_at": fired_at[:20], "delta": ctx.settings.adwin_delta},
        ),
    ]
