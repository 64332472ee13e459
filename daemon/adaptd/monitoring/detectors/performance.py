"""Performance on labelled feedback: accuracy, macro-F1, per-class recall, calibration error.

The reference window's labelled rows give each statistic a reference value; a drop beyond
``accuracy_drop`` (or a calibration error that grows by as much) is a DRIFT status.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from adaptd.monitoring.detectors.base import CheckContext, error, insufficient, verdict
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def labelled_rows(window: Window) -> tuple[FloatArray, IntArray, IntArray]:
    mask = window.labelled
    return window.probabilities[mask], window.predicted[mask], window.y_true[mask]


def accuracy(y_true: IntArray, y_pred: IntArray) -> float:
    return float(np.mean(y_true == y_pred))


def recalls(y_true: IntArray, y_pred: IntArray, k: int) -> list[float | None]:
    """Recall per class index; None for a class with no true example."""
    out: list[float | None] = []
    for c in range(k):
        support = y_true == c
        out.append(float(np.mean(y_pred[support] == c)) if support.any() else None)
    return out


def macro_f1(y_true: IntArray, y_pred: IntArray) -> float:
    """Macro F1 over the classes present in truth or prediction (scikit-learn's default)."""
    scores = []
    for c in np.union1d(y_true, y_pred):
        tp = np.sum((y_pred == c) & (y_true == c))
        fp = np.sum((y_pred == c) & (y_true != c))
        fn = np.sum((y_pred != c) & (y_true == c))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def ece(probs: FloatArray, y_true: IntArray, bins: int) -> float:
    """Expected calibration error of the top-class confidence over equal-width bins."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(total)


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
