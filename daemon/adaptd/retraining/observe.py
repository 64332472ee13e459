"""What probation compares, read from the store: an adapter's labelled record over a window.

The edge between the store and the pure :func:`adaptd.retraining.probation.decide`. Label-free
estimates (CBPE) and the serving error rate come from the monitors; the control loop merges them
into the :class:`Observation` with ``dataclasses.replace``. Accuracy and the group gaps are the
monitors' and the gates' own (:mod:`adaptd.evaluation.measures`), with the same minimum group
size (``monitors.min_group_size``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import Engine

from adaptd.evaluation import measures
from adaptd.retraining.probation import Observation
from adaptd.storage import repository as repo

#: probation's names of the gaps it watches, and the measure of each
GAPS = {"dp_diff": "dp_diff", "accuracy_gap": "accuracy_diff"}


def observe(
    engine: Engine,
    adapter: str,
    labels: Sequence[str],
    *,
    since: datetime | None = None,
    attributes: Sequence[str] = (),
    min_group_size: int,
    positive_label: str | None = None,
    limit: int = 10_000,
) -> Observation:
    """Labelled accuracy and bias gaps (``dp_diff.<attr>``, ``accuracy_gap.<attr>``) of the
    predictions ``adapter`` served (feedback given since ``since``)."""
    rows = repo.labelled_predictions(engine, since=since, adapter=adapter, limit=limit)
    index = {label: i for i, label in enumerate(labels)}
    rows = [r for r in rows if r.true_label in index and r.prediction.label in index]
    if not rows:
        return Observation(samples=0)
    y = np.array([index[r.true_label] for r in rows], dtype=np.int64)
    p = np.array([index[r.prediction.label] for r in rows], dtype=np.int64)
    positive = index.get(positive_label or labels[-1], len(labels) - 1)
    attrs = [r.prediction.attributes for r in rows]
    bias: dict[str, float] = {}
    for attribute in attributes:
        groups = measures.groups_of(attrs, attribute, min_group_size=min_group_size)
        if not groups.judged:
            continue
        for name, measure in GAPS.items():
            gap = measures.GAPS[measure](groups.codes, y, p, positive, len(groups.names))
            if np.isfinite(gap):
                bias[f"{name}.{attribute}"] = gap
    return Observation(samples=len(rows), labelled_accuracy=measures.accuracy(y, p), bias=bias)
