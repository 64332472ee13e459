"""What probation compares, read from the store: an adapter's labelled record over a window.

The edge between the store and the pure :func:`adaptd.retraining.probation.decide`. Label-free
estimates (CBPE) and the serving error rate come from the monitors; the control loop merges them
into the :class:`Observation` with ``dataclasses.replace``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
from sqlalchemy import Engine

from adaptd.retraining.probation import Observation
from adaptd.retraining.validation import accuracy_gap, dp_diff
from adaptd.storage import repository as repo


def observe(
    engine: Engine,
    adapter: str,
    labels: Sequence[str],
    *,
    since: datetime | None = None,
    attributes: Sequence[str] = (),
    limit: int = 10_000,
) -> Observation:
    """Labelled accuracy and bias gaps (``dp_diff.<attr>``, ``accuracy_gap.<attr>``) of the
    predictions ``adapter`` served (feedback given since ``since``)."""
    rows = repo.labelled_predictions(engine, since=since, adapter=adapter, limit=limit)
    index = {label: i for i, label in enumerate(labels)}
    rows = [r for r in rows if r.true_label in index and r.prediction.label in index]
    if not rows:
        return Observation(samples=0)
    y = np.array([index[r.true_label] for r in rows])
    p = np.array([index[r.prediction.label] for r in rows])
    attrs = [r.prediction.attributes for r in rows]
    bias: dict[str, float] = {}
    for attribute in attributes:
        if (gap := dp_diff(p, attrs, attribute, len(labels))) is not None:
            bias[f"dp_diff.{attribute}"] = gap
        if (acc_gap := accuracy_gap(y, p, attrs, attribute)) is not None:
            bias[f"accuracy_gap.{attribute}"] = acc_gap
    return Observation(samples=len(rows), labelled_accuracy=float((y == p).mean()), bias=bias)
