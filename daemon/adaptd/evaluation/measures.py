"""The one vocabulary of measurements: monitors, gates and probation all count with these.

Pure numpy on class indices (``-1`` means unknown and is never counted as right or wrong by the
caller's masks), so the same definition of accuracy, macro-F1 or a group gap holds everywhere.
Definitions follow scikit-learn and Fairlearn, and the unit tests pin them against both:

- macro-F1 averages over the classes present in the truth or the predictions (scikit-learn);
- a group gap is the largest minus the smallest rate over the groups with at least
  ``min_group_size`` rows (Fairlearn's ``*_difference(method="between_groups")``);
  demographic parity is the selection rate of one positive class.

Intervals, because every compared number must say how sure it is:

- :func:`wilson` for one proportion (accuracy on a slice): good coverage down to tens of rows,
  where the Wald interval is far too narrow;
- :func:`paired_difference` for candidate minus champion accuracy on the *same* rows: Bonett and
  Price's (2012) adjusted Wald interval on the discordant pairs, the interval that goes with
  McNemar's test (:func:`mcnemar_p`) and keeps its coverage for small discordant counts;
- :func:`independent_difference` for two accuracies on different rows (probation: the old
  adapter's traffic vs the new one's): Newcombe's hybrid score interval;
- :func:`bootstrap_interval` for everything without a closed form (macro-F1, group gaps), over
  rows resampled with a fixed seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, kw_only=True)
class Interval:
    """A two-sided confidence interval at ``level`` (0.95: 95 %)."""

    low: float
    high: float
    level: float
    method: str

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def to_dict(self) -> dict[str, float | str]:
        return {"low": self.low, "high": self.high, "level": self.level, "method": self.method}


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + level / 2)


# --------------------------------------------------------------------------- point measures


def accuracy(y_true: IntArray, y_pred: IntArray) -> float:
    """Share of rows predicted right; NaN for no rows."""
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def macro_f1(y_true: IntArray, y_pred: IntArray) -> float:
    """Unweighted mean F1 over the classes present in truth or prediction (scikit-learn)."""
    if not len(y_true):
        return float("nan")
    scores = []
    for c in np.union1d(y_true, y_pred):
        tp = int(np.sum((y_pred == c) & (y_true == c)))
        fp = int(np.sum((y_pred == c) & (y_true != c)))
        fn = int(np.sum((y_pred != c) & (y_true == c)))
        denom = 2 * tp + fp + fn
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def recalls(y_true: IntArray, y_pred: IntArray, k: int) -> list[float | None]:
    """Recall per class index; None for a class with no true example."""
    out: list[float | None] = []
    for c in range(k):
        support = y_true == c
        out.append(float(np.mean(y_pred[support] == c)) if support.any() else None)
    return out


def confusion(y_true: IntArray, y_pred: IntArray, k: int) -> IntArray:
    """``(k, k)`` counts, rows the true class, columns the predicted one (scikit-learn's order)."""
    out = np.zeros((k, k), dtype=np.int64)
    np.add.at(out, (y_true, y_pred), 1)
    return out


def majority_share(y_true: IntArray) -> float:
    """Accuracy of always answering the most frequent true class: the floor any model must beat."""
    if not len(y_true):
        return float("nan")
    return float(np.bincount(y_true).max() / len(y_true))


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


# --------------------------------------------------------------------------- groups


@dataclass(frozen=True, slots=True, kw_only=True)
class Groups:
    """Rows grouped by one attribute, small groups already left out.

    ``codes[i]`` is the group of row ``i`` among ``names`` or -1 (no attribute, a group smaller
    than the minimum, or a row the caller excluded).
    """

    attribute: str
    names: tuple[str, ...]
    codes: IntArray
    #: size of every group seen, including the ones left out
    sizes: Mapping[str, int]
    left_out: tuple[str, ...]
    rows_without_attribute: int
    min_group_size: int

    @property
    def judged(self) -> bool:
        """Two groups are the least a gap needs."""
        return len(self.names) >= 2

    @property
    def n(self) -> int:
        return int((self.codes >= 0).sum())

    def why_not_judged(self) -> str:
        return (
            f"needs two {self.attribute!r} groups of at least {self.min_group_size} rows; "
            f"group sizes {dict(self.sizes)}, {self.rows_without_attribute} rows without the "
            "attribute"
        )


def groups_of(
    attributes: Sequence[Mapping[str, str]],
    attribute: str,
    *,
    min_group_size: int,
    rows: BoolArray | None = None,
) -> Groups:
    """Group the rows (those in ``rows``, default all) by ``attribute``."""
    n = len(attributes)
    use = np.ones(n, dtype=bool) if rows is None else rows
    values = [a.get(attribute) if u else None for a, u in zip(attributes, use, strict=True)]
    sizes: dict[str, int] = {}
    for v in values:
        if v is not None:
            sizes[v] = sizes.get(v, 0) + 1
    kept = sorted(g for g, s in sizes.items() if s >= min_group_size)
    index = {g: i for i, g in enumerate(kept)}
    codes = np.array([index.get(v, -1) if v is not None else -1 for v in values], dtype=np.int64)
    return Groups(
        attribute=attribute,
        names=tuple(kept),
        codes=codes.reshape(n),
        sizes=dict(sorted(sizes.items())),
        left_out=tuple(sorted(g for g in sizes if g not in index)),
        rows_without_attribute=int(
            sum(1 for v, u in zip(values, use, strict=True) if u and v is None)
        ),
        min_group_size=min_group_size,
    )


def group_rates(codes: IntArray, hits: BoolArray, within: BoolArray, g: int) -> FloatArray:
    """Per group, the share of ``within`` rows that are ``hits`` (NaN for a group with none)."""
    keep = within & (codes >= 0)
    num = np.bincount(codes[keep], weights=hits[keep].astype(np.float64), minlength=g)
    den = np.bincount(codes[keep], minlength=g).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def spread(rates: FloatArray) -> float:
    """Largest minus smallest finite rate; NaN with fewer than two."""
    finite = rates[np.isfinite(rates)]
    return float(finite.max() - finite.min()) if len(finite) >= 2 else float("nan")


def dp_gap(codes: IntArray, y_true: IntArray, y_pred: IntArray, positive: int, g: int) -> float:
    """Demographic parity difference: gap in the rate of predicting ``positive`` (no labels)."""
    return spread(group_rates(codes, y_pred == positive, np.ones(len(codes), dtype=bool), g))


def eo_gap(codes: IntArray, y_true: IntArray, y_pred: IntArray, positive: int, g: int) -> float:
    """Equalized odds difference: the larger of the TPR gap and the FPR gap."""
    hits = y_pred == positive
    tpr = group_rates(codes, hits, y_true == positive, g)
    fpr = group_rates(codes, hits, (y_true >= 0) & (y_true != positive), g)
    both = np.isfinite(tpr) & np.isfinite(fpr)
    return max(spread(tpr[both]), spread(fpr[both]))


def accuracy_gap(
    codes: IntArray, y_true: IntArray, y_pred: IntArray, positive: int, g: int
) -> float:
    """Gap in accuracy between groups (labelled rows only)."""
    return spread(group_rates(codes, y_pred == y_true, y_true >= 0, g))


#: (group codes, y_true or -1, y_pred, positive class, number of groups) -> the gap
Gap = Callable[[IntArray, IntArray, IntArray, int, int], float]
GAPS: Mapping[str, Gap] = {"dp_diff": dp_gap, "eo_diff": eo_gap, "accuracy_diff": accuracy_gap}


def by_group(
    groups: Groups, y_true: IntArray, y_pred: IntArray, positive: int
) -> dict[str, dict[str, float | None]]:
    """Per-group positive rate, accuracy, TPR and FPR (None where a group has no such rows)."""
    g = len(groups.names)
    codes = groups.codes
    hits = y_pred == positive
    everyone = np.ones(len(codes), dtype=bool)
    rates = {
        "positive_rate": group_rates(codes, hits, everyone, g),
        "accuracy": group_rates(codes, y_pred == y_true, y_true >= 0, g),
        "tpr": group_rates(codes, hits, y_true == positive, g),
        "fpr": group_rates(codes, hits, (y_true >= 0) & (y_true != positive), g),
    }
    return {
        name: {k: (float(v[i]) if np.isfinite(v[i]) else None) for k, v in rates.items()}
        for i, name in enumerate(groups.names)
    }


# --------------------------------------------------------------------------- intervals


def wilson(successes: int, n: int, *, level: float) -> Interval:
    """Wilson score interval of a proportion (Wilson 1927; Brown, Cai and DasGupta 2001)."""
    if n <= 0:
        return Interval(low=0.0, high=1.0, level=level, method="wilson")
    z = _z(level)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(
        low=max(0.0, float(centre - half)), high=min(1.0, float(centre + half)),
        level=level, method="wilson",
    )  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class PairedDifference:
    """Accuracy of ``a`` minus accuracy of ``b`` on the same rows."""

    difference: float
    interval: Interval
    #: rows only ``a`` got right, rows only ``b`` got right (the discordant pairs)
    a_only: int
    b_only: int
    n: int

    def to_dict(self) -> dict[str, object]:
        return {
            "difference": self.difference,
            "ci": self.interval.to_dict(),
            "a_only": self.a_only,
            "b_only": self.b_only,
            "n": self.n,
        }


def paired_difference(
    a_correct: BoolArray, b_correct: BoolArray, *, level: float
) -> PairedDifference:
    """Bonett-Price adjusted Wald interval for a difference of paired proportions: one pseudo
    count on each discordant cell and two on ``n``, which keeps the coverage near ``level`` even
    with a handful of discordant pairs (where the plain Wald interval collapses to a point)."""
    n = len(a_correct)
    a_only = int(np.sum(a_correct & ~b_correct))
    b_only = int(np.sum(~a_correct & b_correct))
    if n == 0:
        interval = Interval(low=-1.0, high=1.0, level=level, method="bonett-price")
        return PairedDifference(difference=float("nan"), interval=interval, a_only=0, b_only=0, n=0)
    p12 = (a_only + 1) / (n + 2)
    p21 = (b_only + 1) / (n + 2)
    centre = p12 - p21
    se = float(np.sqrt(max(p12 + p21 - centre * centre, 0.0) / (n + 2)))
    z = _z(level)
    interval = Interval(
        low=max(-1.0, centre - z * se), high=min(1.0, centre + z * se),
        level=level, method="bonett-price",
    )  # fmt: skip
    return PairedDifference(
        difference=(a_only - b_only) / n, interval=interval, a_only=a_only, b_only=b_only, n=n
    )


def mcnemar_p(a_correct: BoolArray, b_correct: BoolArray) -> float:
    """One-sided exact McNemar test: the chance of ``a`` winning at least this many discordant
    pairs if both were equally good."""
    from scipy.stats import binomtest

    wins = int(np.sum(a_correct & ~b_correct))
    losses = int(np.sum(~a_correct & b_correct))
    if wins + losses == 0:
        return 1.0
    return float(binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue)


def independent_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, *, level: float
) -> tuple[float, Interval]:
    """``p_a - p_b`` for proportions on different rows, with Newcombe's (1998, method 10) hybrid
    score interval built from the two Wilson intervals."""
    if n_a <= 0 or n_b <= 0:
        return float("nan"), Interval(low=-1.0, high=1.0, level=level, method="newcombe")
    pa, pb = successes_a / n_a, successes_b / n_b
    a = wilson(successes_a, n_a, level=level)
    b = wilson(successes_b, n_b, level=level)
    la, ua, lb, ub = a.low, a.high, b.low, b.high
    d = pa - pb
    low = d - float(np.sqrt((pa - la) ** 2 + (ub - pb) ** 2))
    high = d + float(np.sqrt((ua - pa) ** 2 + (pb - lb) ** 2))
    return d, Interval(low=max(-1.0, low), high=min(1.0, high), level=level, method="newcombe")


def bootstrap_interval(
    statistic: Callable[[IntArray], float], n: int, *, samples: int, seed: int, level: float
) -> Interval | None:
    """Percentile interval of ``statistic(row_indices)`` over ``samples`` resamples of ``n`` rows
    (with replacement, seeded); None when no resample gives a finite value."""
    if n == 0 or samples == 0:
        return None
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n, n)) for _ in range(samples)])
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return Interval(low=float(low), high=float(high), level=level, method="bootstrap")
