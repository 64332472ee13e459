"""Performance on labelled feedback: accuracy, macro-F1, per-class recall, calibration error.

The reference window's labelled rows give each statistic a reference value; a drop beyond
``accuracy_drop`` (or a calibration error that grows by as much) is a DRIFT status. The
statistics are :mod:`adaptd.evaluation.measures`', the same the gates and probation use.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from adaptd.evaluation.measures import accuracy, ece, macro_f1, recalls
from adaptd.monitoring.detectors.base import CheckContext, error, insufficient, verdict
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def labelled_rows(window: Window) -> tuple[FloatArray, IntArray, IntArray]:
    mask = window.labelled
    return window.probabilities[mask], window.predicted[mask], window.y_true[mask]


def performance(ctx: CheckContext, reference: Window, current: Window) -> list[Signal]:
    settings = ctx.settings
    labels = current.labels
    names = [
        "performance.accuracy",
        "performance.macro_f1",
        "performance.ece",
        *(f"performance.recall.{label}" for label in labels),
    ]
    ref_probs, ref_pred, ref_true = labelled_rows(reference)
    cur_probs, cur_pred, cur_true = labelled_rows(current)
    n_ref, n_cur = len(ref_true), len(cur_true)
    if n_cur < settings.min_samples:
        return [insufficient(ctx, n, n_reference=n_ref, n_current=n_cur) for n in names]
    if not np.isfinite(cur_probs).all():
        reason = "NaN probabilities in labelled current predictions (a broken adapter?)"
        return [error(ctx, n, reason, n_reference=n_ref, n_current=n_cur) for n in names]
    has_ref = n_ref >= settings.min_samples and bool(np.isfinite(ref_probs).all())
    drop = settings.accuracy_drop
    sizes: dict[str, Any] = {"n_reference": n_ref, "n_current": n_cur}

    def lower_is_worse(
        name: str, value: float, ref_value: float | None, **details: object
    ) -> Signal:
        drifted = ref_value is not None and value < ref_value - drop
        return verdict(
            ctx, name, value, drifted=drifted, reference_value=ref_value, **sizes, details=details
        )

    acc = accuracy(cur_true, cur_pred)
    f1 = macro_f1(cur_true, cur_pred)
    cur_ece = ece(cur_probs, cur_true, settings.ece_bins)
    ref_ece = ece(ref_probs, ref_true, settings.ece_bins) if has_ref else None
    signals = [
        lower_is_worse(
            "performance.accuracy", acc, accuracy(ref_true, ref_pred) if has_ref else None
        ),
        lower_is_worse(
            "performance.macro_f1", f1, macro_f1(ref_true, ref_pred) if has_ref else None
        ),
        verdict(
            ctx,
            "performance.ece",
            cur_ece,
            drifted=ref_ece is not None and cur_ece > ref_ece + drop,
            reference_value=ref_ece,
            **sizes,
            details={"bins": settings.ece_bins},
        ),
    ]
    k = len(labels)
    cur_recalls = recalls(cur_true, cur_pred, k)
    ref_recalls = recalls(ref_true, ref_pred, k) if has_ref else [None] * k
    for c, label in enumerate(labels):
        name = f"performance.recall.{label}"
        value = cur_recalls[c]
        if value is None:
            reason = f"no labelled example of class {label!r} in the current window"
            signals.append(insufficient(ctx, name, reason=reason, **sizes))
            continue
        support = int(np.sum(cur_true == c))
        signals.append(lower_is_worse(name, value, ref_recalls[c], support=support))
    return signals
