"""Group fairness on live traffic, with Fairlearn's definitions:

- demographic parity difference: largest minus smallest selection rate (share predicted positive)
  across groups; needs no labels;
- equalized odds difference: the larger of the TPR gap and the FPR gap across groups;
- accuracy difference: largest minus smallest group accuracy.

Groups come from a request attribute; rows without it are left out (and counted), groups smaller
than ``min_group_size`` are left out, and fewer than two groups left is "insufficient data".
Bootstrap percentile intervals (seeded, over a row order that depends on values only) go in details.
Rates, gaps, groups and intervals are :mod:`adaptd.evaluation.measures`', shared with the gates
and probation, and ``min_group_size`` is the one minimum group size of all three.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from adaptd.evaluation import measures
from adaptd.monitoring.detectors.base import CheckContext, insufficient, verdict
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

#: the gaps as functions of (group codes, y_true or -1, y_pred, positive class, groups)
dp_gap = measures.dp_gap
eo_gap = measures.eo_gap
accuracy_gap = measures.accuracy_gap


def _one(
    ctx: CheckContext,
    name: str,
    gap: measures.Gap,
    window: Window,
    attr: str,
    rows: npt.NDArray[np.bool_],
    positive: int,
) -> Signal:
    settings = ctx.settings
    groups = measures.groups_of(
        window.attributes, attr, min_group_size=settings.min_group_size, rows=rows
    )
    n_used = groups.n
    if not groups.judged:
        return insufficient(
            ctx, name, n_reference=0, n_current=n_used, reason=groups.why_not_judged()
        )
    keep = groups.codes >= 0
    # A row order that depends on values only, so the seeded bootstrap gives the same interval
    # for the same rows whatever order the store returned them in.
    codes, y_true, y_pred = groups.codes[keep], window.y_true[keep], window.predicted[keep]
    order = np.lexsort((y_pred, y_true, codes))
    codes, y_true, y_pred = codes[order], y_true[order], y_pred[order]
    g = len(groups.names)
    value = gap(codes, y_true, y_pred, positive, g)
    if not np.isfinite(value):
        reason = (
            f"the gap is undefined: no group has both true positives and negatives "
            f"({dict(groups.sizes)})"
        )
        return insufficient(ctx, name, n_reference=0, n_current=n_used, reason=reason)
    interval = measures.bootstrap_interval(
        lambda ix: gap(codes[ix], y_true[ix], y_pred[ix], positive, g),
        len(codes),
        samples=settings.bootstrap_samples,
        seed=settings.seed,
        level=0.95,
    )
    kept = measures.Groups(
        attribute=attr,
        names=groups.names,
        codes=codes,
        sizes=groups.sizes,
        left_out=groups.left_out,
        rows_without_attribute=groups.rows_without_attribute,
        min_group_size=groups.min_group_size,
    )
    return verdict(
        ctx,
        name,
        value,
        drifted=value > settings.bias_threshold,
        n_reference=0,
        n_current=n_used,
        details={
            "groups": dict(groups.sizes),
            "by_group": measures.by_group(kept, y_true, y_pred, positive),
            "left_out_small_groups": list(groups.left_out),
            "rows_without_attribute": groups.rows_without_attribute,
            "ci95": None if interval is None else [interval.low, interval.high],
            "threshold": settings.bias_threshold,
        },
    )


def bias(ctx: CheckContext, current: Window) -> list[Signal]:
    """``bias.<attr>.dp_diff|eo_diff|accuracy_diff`` for every configured attribute."""
    labels = current.labels
    positive_label = ctx.settings.positive_label or labels[-1]
    positive = labels.index(positive_label) if positive_label in labels else -1
    predicted = current.has_prediction & (current.predicted >= 0)
    labelled = current.labelled
    out: list[Signal] = []
    for attr in ctx.settings.attributes:
        out += [
            _one(ctx, f"bias.{attr}.dp_diff", dp_gap, current, attr, predicted, positive),
            _one(ctx, f"bias.{attr}.eo_diff", eo_gap, current, attr, labelled, positive),
            _one(
                ctx, f"bias.{attr}.accuracy_diff", accuracy_gap, current, attr, labelled, positive
            ),
        ]
    return out
