"""Accuracy without labels, as NannyML's CBPE does: calibrate the top-class confidence on the
reference window's labelled rows (isotonic regression of "was correct" on confidence), then the
expected accuracy of the current window is the mean calibrated confidence of its predictions.

When the current window also has labels, the labelled accuracy is reported beside the estimate
so operators can see how good the estimate is.
"""

from __future__ import annotations

import numpy as np
from sklearn.isotonic import IsotonicRegression

from adaptd.monitoring.detectors.base import CheckContext, error, insufficient, verdict
from adaptd.monitoring.detectors.prediction import prediction_rows
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

NAME = "performance.estimated_accuracy"


def estimated_accuracy(ctx: CheckContext, reference: Window, current: Window) -> list[Signal]:
    settings = ctx.settings
    mask = reference.labelled
    ref_conf = reference.probabilities[mask].max(axis=1) if mask.any() else np.empty(0)
    ref_correct = (reference.predicted[mask] == reference.y_true[mask]).astype(np.float64)
    cur_probs, _, cur_broken = prediction_rows(current)
    n_ref, n_cur = len(ref_correct), len(cur_probs)
    if cur_broken or not np.isfinite(ref_conf).all():
        reason = "NaN or missing probabilities in the predictions (a broken adapter?)"
        return [error(ctx, NAME, reason, n_reference=n_ref, n_current=n_cur)]
    if n_ref < settings.min_samples or n_cur < settings.min_samples:
        return [insufficient(ctx, NAME, n_reference=n_ref, n_current=n_cur)]
    calibration = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    calibration.fit(ref_conf, ref_correct)
    estimate = float(np.mean(calibration.predict(cur_probs.max(axis=1))))
    ref_accuracy = float(ref_correct.mean())
    cur_mask = current.labelled
    details: dict[str, object] = {"calibrated_on": n_ref}
    if cur_mask.any():
        labelled = float(np.mean(current.predicted[cur_mask] == current.y_true[cur_mask]))
        details |= {"labelled_accuracy": labelled, "n_labelled": int(cur_mask.sum())}
    return [
        verdict(
            ctx,
            NAME,
            estimate,
            drifted=estimate < ref_accuracy - settings.accuracy_drop,
            reference_value=ref_accuracy,
            n_reference=n_ref,
            n_current=n_cur,
            details=details,
        )
    ]
