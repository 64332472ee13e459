"""Group fairness on live traffic, with Fairlearn's definitions:

- demographic parity difference: largest minus smallest selection rate (share predicted positive)
  across groups; needs no labels;
- equalized odds difference: the larger of the TPR gap and the FPR gap across groups;
- accuracy difference: largest minus smallest group accuracy.

Groups come from a request attribute; rows without it are left out (and counted), groups smaller
than ``min_group_size`` are left out, and fewer than two groups left is "insufficient data".
Bootstrap percentile intervals (seeded, over a row order that depends on values only) go in details.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from adaptd.monitoring.detectors.base import CheckContext, insufficient, verdict
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
#: (group codes, y_true or -1, positive prediction, number of groups) -> the gap
Gap = Callable[[IntArray, IntArray, IntArray, int], float]


def _rates(
    groups: IntArray, hits: npt.NDArray[np.bool_], within: npt.NDArray[np.bool_], g: int
) -> FloatArray:
    num = np.bincount(groups[within], weights=hits[within].astype(np.float64), minlength=g)
    den = np.bincount(groups[within], minlength=g).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _spread(rates: FloatArray) -> float:
    finite = rates[np.isfinite(rates)]
    return float(finite.max() - finite.min()) if len(finite) >= 2 else float("nan")


def dp_gap(groups: IntArray, y_true: IntArray, positive: IntArray, g: int) -> float:
    everyone = np.ones(len(groups), dtype=bool)
    return _spread(_rates(groups, positive.astype(bool), everyone, g))


def eo_gap(groups: IntArray, y_true: IntArray, positive: IntArray, g: int) -> float:
    pred = positive.astype(bool)
    tpr = _rates(groups, pred, y_true == 1, g)
    fpr = _rates(groups, pred, y_true == 0, g)
    both = np.isfinite(tpr) & np.isfinite(fpr)
    return max(_spread(tpr[both]), _spread(fpr[both]))


def accuracy_gap(groups: IntArray, y_true: IntArray, positive: IntArray, g: int) -> float:
    everyone = np.ones(len(groups), dtype=bool)
    return _spread(_rates(groups, positive == y_true, everyone, g))


def by_group(
    names: list[str], groups: IntArray, y_true: IntArray, positive: IntArray
) -> dict[str, dict[str, float | None]]:
    """Per-group positive rate, accuracy, TPR and FPR (None where a group has no such rows)."""
    g = len(names)
    pred = positive.astype(bool)
    labelled = y_true >= 0
    rates = {
        "positive_rate": _rates(groups, pred, np.ones(len(groups), dtype=bool), g),
        "accuracy": _rates(groups, positive == y_true, labelled, g),
        "tpr": _rates(groups, pred, y_true == 1, g),
        "fpr": _rates(groups, pred, y_true == 0, g),
    }
    return {
        name: {k: (float(v[i]) if np.isfinite(v[i]) else None) for k, v in rates.items()}
        for i, name in enumerate(names)
    }


def _bootstrap(
    gap: Gap, groups: IntArray, y_true: IntArray, positive: IntArray, g: int, ctx: CheckContext
) -> list[float] | None:
    samples = ctx.settings.bootstrap_samples
    if samples == 0:
        return None
    order = np.lexsort((positive, y_true, groups))
    groups, y_true, positive = groups[order], y_true[order], positive[order]
    rng = np.random.default_rng(ctx.settings.seed)
    values = []
    for _ in range(samples):
        idx = rng.integers(0, len(groups), len(groups))
        values.append(gap(groups[idx], y_true[idx], positive[idx], g))
    finite = np.asarray([v for v in values if np.isfinite(v)])
    if not len(finite):
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return [float(low), float(high)]


def _group_codes(
    window: Window, attr: str, rows: npt.NDArray[np.bool_]
) -> tuple[IntArray, list[str], int]:
    """Codes of rows that carry ``attr`` (-1 for those that do not) and the group names."""
    values = [a.get(attr) if r else None for a, r in zip(window.attributes, rows, strict=True)]
    names = sorted({v for v in values if v is not None})
    index = {v: i for i, v in enumerate(names)}
    codes = np.array([index[v] if v is not None else -1 for v in values], dtype=np.int64)
    missing = int(sum(1 for v, r in zip(values, rows, strict=True) if r and v is None))
    return codes, names, missing


def _one(
    ctx: CheckContext,
    name: str,
    gap: Gap,
    window: Window,
    attr: str,
    rows: npt.NDArray[np.bool_],
    positive_index: int,
) -> Signal:
    settings = ctx.settings
    codes, names, missing = _group_codes(window, attr, rows)
    keep = rows & (codes >= 0)
    sizes = np.bincount(codes[keep], minlength=len(names))
    big = sizes >= settings.min_group_size
    group_sizes = {n: int(s) for n, s in zip(names, sizes, strict=True)}
    n_used = int(sizes[big].sum())
    if big.sum() < 2:
        reason = (
            f"needs two {attr!r} groups of at least {settings.min_group_size} rows; "
            f"group sizes {group_sizes}, {missing} rows without the attribute"
        )
        return insufficient(ctx, name, n_reference=0, n_current=n_used, reason=reason)
    keep &= big[np.maximum(codes, 0)]
    remap = np.cumsum(big) - 1
    g_codes = remap[codes[keep]]
    y_true = np.where(
        window.y_true[keep] == positive_index, 1, np.where(window.y_true[keep] >= 0, 0, -1)
    )
    positive = (window.predicted[keep] == positive_index).astype(np.int64)
    g = int(big.sum())
    value = gap(g_codes, y_true, positive, g)
    if not np.isfinite(value):
        reason = (
            f"the gap is undefined: no group has both true positives and negatives ({group_sizes})"
        )
        return insufficient(ctx, name, n_reference=0, n_current=n_used, reason=reason)
    return verdict(
        ctx,
        name,
        value,
        drifted=value > settings.bias_threshold,
        n_reference=0,
        n_current=n_used,
        details={
            "groups": group_sizes,
            "by_group": by_group(
                [n for n, b in zip(names, big, strict=True) if b], g_codes, y_true, positive
            ),
            "left_out_small_groups": [n for n, b in zip(names, big, strict=True) if not b],
            "rows_without_attribute": missing,
            "ci95": _bootstrap(gap, g_codes, y_true, positive, g, ctx),
            "threshold": settings.bias_threshold,
        },
    )


def bias(ctx: CheckContext, current: Window) -> list[Signal]:
    """``bias.<attr>.dp_diff|eo_diff|accuracy_diff`` for every configured attribute."""
    labels = current.labels
    positive_label = ctx.settings.positive_label or labels[-1]
    positive_index = labels.index(positive_label) if positive_label in labels else -1
    predicted = current.has_prediction & (current.predicted >= 0)
    labelled = current.labelled
    out: list[Signal] = []
    for attr in ctx.settings.attributes:
        out += [
            _one(ctx, f"bias.{attr}.dp_diff", dp_gap, current, attr, predicted, positive_index),
            _one(ctx, f"bias.{attr}.eo_diff", eo_gap, current, attr, labelled, positive_index),
            _one(
                ctx,
                f"bias.{attr}.accuracy_diff",
                accuracy_gap,
                current,
                attr,
                labelled,
                positive_index,
            ),
        ]
    return out
