"""What a retrain keeps of the candidate's own scores, besides the verdict.

- :func:`validation_signals`: its accuracy, macro-F1 and calibration error on the recent
  holdout, under the names of the live signals, so a policy's ``relative_to: validation`` (and
  its backtest) compares live traffic with what the adapter did on data it never trained on;
- :func:`reference_rows`: its scored holdout and golden rows (class, probabilities, pooled
  embedding, true label, attributes), stored at promotion as its monitoring reference.

Pure: the job passes the train result and the examples; the measures are the monitors' own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adaptd.datasets.records import Example
from adaptd.evaluation import measures
from adaptd.retraining.scoring import decode_embedding
from adaptd.retraining.spec import TrainResult
from adaptd.storage.records import ReferenceRow

#: validation metrics on recent data, under the names of the signals they compare with, so a
#: policy's `relative_to: validation` (and its backtest) finds them in the adapter's metrics
SIGNAL_OF_METRIC = {
    "accuracy": "performance.accuracy",
    "macro_f1": "performance.macro_f1",
    "ece": "performance.ece",
}
#: bins of the calibration error stored with an adapter (monitors.ece_bins' default)
ECE_BINS = 10


def validation_signals(
    result: TrainResult, holdout: Sequence[Example], labels: Sequence[str]
) -> dict[str, float]:
    """The candidate's accuracy, macro-F1 and calibration error on the recent holdout, measured
    as the monitors measure live traffic."""
    index = {label: i for i, label in enumerate(labels)}
    predicted = result.predictions.get("candidate", {}).get("recent")
    if not predicted or not holdout:
        return {}
    y = np.array([index[e.label or ""] for e in holdout], dtype=np.int64)
    p = np.asarray(predicted, dtype=np.int64)
    out = {
        SIGNAL_OF_METRIC["accuracy"]: measures.accuracy(y, p),
        SIGNAL_OF_METRIC["macro_f1"]: measures.macro_f1(y, p),
    }
    probabilities = result.scores.get("recent", {}).get("probabilities")
    if probabilities and len(probabilities) == len(y):
        out[SIGNAL_OF_METRIC["ece"]] = measures.ece(np.asarray(probabilities), y, ECE_BINS)
    return out


def reference_rows(
    version: str,
    examples: Mapping[str, Sequence[Example]],
    scores: Mapping[str, Mapping[str, Any]],
    predictions: Mapping[str, Sequence[int]],
    labels: Sequence[str],
) -> list[ReferenceRow]:
    """The scored rows of each slice; a slice the child did not score is left out."""
    out: list[ReferenceRow] = []
    for name, rows in examples.items():
        scored = scores.get(name) or {}
        probabilities = scored.get("probabilities")
        predicted = predictions.get(name)
        if not rows or probabilities is None or predicted is None:
            continue
        embeddings = scored.get("embeddings") or [None] * len(rows)
        for position, (e, probs, label, vector) in enumerate(
            zip(rows, probabilities, predicted, embeddings, strict=True)
        ):
            out.append(
                ReferenceRow(
                    adapter=version,
                    slice=name,
                    position=position,
                    text=e.text,
                    true_label=e.label or "",
                    label=labels[label],
                    probabilities=dict(zip(labels, probs, strict=True)),
                    embedding=decode_embedding(vector) if vector else None,
                    attributes=dict(e.attributes),
                )
            )
    return out
