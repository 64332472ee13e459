"""Prediction drift: the predicted-label mix and the shape of the model's confidence.

Needs no labels and no inputs, which makes it the earliest warning on a new domain (Rabanser et
al., "Failing Loudly": tests on softmax outputs are the strongest simple shift detector).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

from adaptd.monitoring.detectors.base import CheckContext, enough, error, insufficient, verdict
from adaptd.monitoring.detectors.stattests import column_drift, wasserstein_normed
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

FloatArray = npt.NDArray[np.float64]
NAMES = (
    "drift.prediction.jsd",
    "drift.prediction.psi",
    "drift.prediction.chi2_p",
    "drift.confidence.wasserstein",
    "drift.entropy.wasserstein",
)
#: PSI is undefined on empty bins; this floor is the usual practice
_PSI_FLOOR = 1e-4


def prediction_rows(window: Window) -> tuple[FloatArray, npt.NDArray[np.int64], int]:
    """Probabilities and predicted indices of rows with a prediction; and how many have NaN."""
    probs = window.probabilities[window.has_prediction]
    predicted = window.predicted[window.has_prediction]
    broken = int((~np.isfinite(probs).all(axis=1) | (predicted < 0)).sum())
    return probs, predicted, broken


def entropy(probs: FloatArray) -> FloatArray:
    p = np.clip(probs, 1e-12, 1.0)
    return np.asarray(-(p * np.log(p)).sum(axis=1), dtype=np.float64)


def label_shares(predicted: npt.NDArray[np.int64], k: int) -> FloatArray:
    return np.bincount(predicted, minlength=k).astype(np.float64) / max(len(predicted), 1)


def psi(reference: FloatArray, current: FloatArray) -> float:
    r = np.maximum(reference, _PSI_FLOOR)
    c = np.maximum(current, _PSI_FLOOR)
    return float(((c - r) * np.log(c / r)).sum())


def chi2_p(reference: FloatArray, current_counts: FloatArray) -> float:
    """Chi-square of current label counts against reference shares; unseen labels are drift."""
    n = current_counts.sum()
    expected = reference * n
    seen = expected > 0
    if np.any(current_counts[~seen] > 0):
        return 0.0
    if seen.sum() < 2:
        return 1.0
    return float(stats.chisquare(current_counts[seen], expected[seen]).pvalue)


def prediction_drift(ctx: CheckContext, reference: Window, current: Window) -> list[Signal]:
    settings = ctx.settings
    ref_probs, ref_pred, ref_broken = prediction_rows(reference)
    cur_probs, cur_pred, cur_broken = prediction_rows(current)
    n_ref, n_cur = len(ref_pred), len(cur_pred)
    if ref_broken or cur_broken:
        reason = (
            f"{cur_broken} current and {ref_broken} reference predictions have NaN or missing "
            "probabilities or a label outside the label set (a broken adapter?)"
        )
        return [error(ctx, n, reason, n_reference=n_ref, n_current=n_cur) for n in NAMES]
    if not enough(ctx, n_ref, n_cur):
        return [insufficient(ctx, n, n_reference=n_ref, n_current=n_cur) for n in NAMES]
    k = len(reference.labels)
    ref_shares, cur_shares = label_shares(ref_pred, k), label_shares(cur_pred, k)
    jsd = float(distance.jensenshannon(ref_shares, cur_shares))
    psi_value = psi(ref_shares, cur_shares)
    p = chi2_p(ref_shares, np.bincount(cur_pred, minlength=k).astype(np.float64))
    shares = {
        "reference_shares": dict(zip(reference.labels, map(float, ref_shares), strict=True)),
        "current_shares": dict(zip(reference.labels, map(float, cur_shares), strict=True)),
    }
    sizes: dict[str, Any] = {"n_reference": n_ref, "n_current": n_cur}
    signals = [
        verdict(
            ctx,
            "drift.prediction.jsd",
            jsd,
            drifted=jsd >= settings.jsd_threshold,
            **sizes,
            details=shares,
        ),
        verdict(
            ctx,
            "drift.prediction.psi",
            psi_value,
            drifted=psi_value >= settings.psi_threshold,
            **sizes,
            details=shares,
        ),
        verdict(
            ctx, "drift.prediction.chi2_p", p, drifted=p < settings.alpha, **sizes, details=shares
        ),
    ]
    for name, ref_values, cur_values in (
        ("drift.confidence.wasserstein", ref_probs.max(axis=1), cur_probs.max(axis=1)),
        ("drift.entropy.wasserstein", entropy(ref_probs), entropy(cur_probs)),
    ):
        distance_value = wasserstein_normed(ref_values, cur_values)
        test = column_drift(ref_values, cur_values, "numerical")
        signals.append(
            verdict(
                ctx,
                name,
                distance_value,
                drifted=test.drifted,
                **sizes,
                details={
                    "method": test.method,
                    "statistic": test.statistic,
                    "reference_mean": float(ref_values.mean()),
                    "current_mean": float(cur_values.mean()),
                },
            )
        )
    return signals
