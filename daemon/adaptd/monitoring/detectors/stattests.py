"""Per-column drift tests chosen by Evidently's default rule, so our verdicts agree with its
``DataDriftPreset`` column by column:

- reference of at most 1000 rows: numerical columns with more than 5 distinct values use KS
  (p <= 0.05), with 3-5 values chi-square (p < 0.05), with 2 values a two-proportion z-test;
  categorical columns chi-square or z-test the same way;
- above 1000 rows: numerical columns use the Wasserstein distance normed by the reference standard
  deviation (>= 0.1), low-cardinality and categorical columns the Jensen-Shannon distance over value
  shares (>= 0.1).

Evidently counts distinct values over both windows together; so do we.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.spatial import distance

Kind = Literal["numerical", "categorical"]
LARGE_REFERENCE = 1000
DISTANCE_THRESHOLD = 0.1
P_THRESHOLD = 0.05


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnDrift:
    method: str  # "ks" | "chi2" | "z" | "wasserstein" | "jensenshannon"
    statistic: float  # a p-value for ks/chi2/z, a distance otherwise
    drifted: bool


def column_drift(
    reference: npt.ArrayLike, current: npt.ArrayLike, kind: Kind = "numerical"
) -> ColumnDrift:
    """Evidently's default test for one column (inputs must be non-empty and NaN-free)."""
    ref = np.asarray(reference)
    cur = np.asarray(current)
    n_values = len(np.unique(np.concatenate([ref, cur])))
    if len(ref) <= LARGE_REFERENCE:
        if kind == "numerical" and n_values > 5:
            p = float(stats.ks_2samp(ref, cur).pvalue)
            return ColumnDrift(method="ks", statistic=p, drifted=p <= P_THRESHOLD)
        if n_values > 2:
            p = chi2_pvalue(ref, cur)
            return ColumnDrift(method="chi2", statistic=p, drifted=p < P_THRESHOLD)
        p = z_pvalue(ref, cur)
        return ColumnDrift(method="z", statistic=p, drifted=p < P_THRESHOLD)
    if kind == "numerical" and n_values > 5:
        d = wasserstein_normed(ref.astype(np.float64), cur.astype(np.float64))
        return ColumnDrift(method="wasserstein", statistic=d, drifted=d >= DISTANCE_THRESHOLD)
    d = jensenshannon_shares(ref, cur)
    return ColumnDrift(method="jensenshannon", statistic=d, drifted=d >= DISTANCE_THRESHOLD)


def wasserstein_normed(
    reference: npt.NDArray[np.float64], current: npt.NDArray[np.float64]
) -> float:
    """First Wasserstein distance divided by the reference std (floored at 0.001, as Evidently)."""
    norm = max(float(np.std(reference)), 0.001)
    return float(stats.wasserstein_distance(reference, current)) / norm


def shares(
    reference: npt.ArrayLike, current: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Value shares of both sides over the union of their values."""
    ref = np.asarray(reference)
    cur = np.asarray(current)
    keys, inverse = np.unique(np.concatenate([ref, cur]), return_inverse=True)
    ref_counts = np.bincount(inverse[: len(ref)], minlength=len(keys))
    cur_counts = np.bincount(inverse[len(ref) :], minlength=len(keys))
    return ref_counts / max(len(ref), 1), cur_counts / max(len(cur), 1)


def jensenshannon_shares(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    ref, cur = shares(reference, current)
    return float(distance.jensenshannon(ref, cur))


def chi2_pvalue(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Chi-square goodness of fit of current counts against reference shares (Evidently's form)."""
    ref, cur = shares(reference, current)
    n_cur = len(np.asarray(current))
    expected = ref * n_cur
    observed = cur * n_cur
    if np.any(expected == 0):
        # a value unseen in the reference: scipy would divide by zero; that is drift by definition
        return 0.0 if np.any(observed[expected == 0] > 0) else 1.0
    return float(stats.chisquare(observed, expected).pvalue)


def z_pvalue(reference: npt.ArrayLike, current: npt.ArrayLike) -> float:
    """Two-proportion z-test on the share of the first (sorted) value."""
    ref = np.asarray(reference)
    cur = np.asarray(current)
    keys = np.unique(np.concatenate([ref, cur]))
    if len(keys) == 1:
        return 1.0
    p1 = float(np.mean(ref != keys[0]))
    p2 = float(np.mean(cur != keys[0]))
    n1, n2 = len(ref), len(cur)
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    denom = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if denom == 0:
        return 1.0
    z = (p1 - p2) / denom
    return float(2 * (1 - stats.norm.cdf(abs(z))))
