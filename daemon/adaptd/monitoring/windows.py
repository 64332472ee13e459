"""Windows: the rows a check compares, as numpy arrays built once from store records.

A window mixes three kinds of rows: live predictions (probabilities, embedding, attributes),
live predictions joined with feedback (those also have a true label), and reference examples from
the adapter's validation data (a text and a label, and probabilities only when the caller scored
them). Masks say which rows carry what, so each detector takes exactly the rows it can use and
reports its own sample sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
import numpy.typing as npt

from adaptd.datasets.records import Example
from adaptd.storage.records import LabelledPrediction, PredictionRecord

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
#: float32 halves the memory of a 100k x 384 window (150 MB instead of 300 MB); the values were
#: float16 in the store anyway
EmbeddingArray = npt.NDArray[np.float32]

#: a row of a window: a live prediction (maybe with feedback) or a reference example
Row = PredictionRecord | LabelledPrediction | Example


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Window:
    """Rows of one side of a comparison. Index -1 in ``predicted``/``y_true`` means unknown."""

    labels: tuple[str, ...]
    texts: tuple[str | None, ...]
    #: (n, k) probabilities in ``labels`` order; rows without a prediction are NaN
    probabilities: FloatArray
    has_prediction: BoolArray
    predicted: IntArray
    y_true: IntArray
    #: (n, d) pooled embeddings, NaN rows where none was logged; None when no row has one
    embeddings: EmbeddingArray | None
    attributes: tuple[Mapping[str, str], ...]
    adapter: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    #: labels seen in records but not in ``labels`` (a misconfigured label set), with counts
    unknown_labels: Mapping[str, int] = field(default_factory=dict)
    #: where the rows come from, for a reference window (what the check's details show)
    origin: str | None = None
    #: per row, the text's descriptors the log kept in its place (``privacy.text: hashed``);
    #: empty when no row has them
    text_features: tuple[Mapping[str, float] | None, ...] = ()

    @property
    def n(self) -> int:
        return len(self.texts)

    @property
    def n_predictions(self) -> int:
        return int(self.has_prediction.sum())

    @property
    def labelled(self) -> BoolArray:
        """Rows with both a prediction and a true label (performance, calibration, bias)."""
        return self.has_prediction & (self.y_true >= 0) & (self.predicted >= 0)

    @property
    def n_labelled(self) -> int:
        return int(self.labelled.sum())

    def text_list(self) -> list[str]:
        return [t for t in self.texts if t is not None]

    def embedding_rows(self) -> EmbeddingArray:
        """The rows with a finite embedding (the array itself, uncopied, when all are)."""
        if self.embeddings is None:
            return np.empty((0, 0), dtype=np.float32)
        keep = np.isfinite(self.embeddings).all(axis=1)
        return self.embeddings if keep.all() else self.embeddings[keep]


def cut_texts(window: Window, max_chars: int) -> Window:
    """``window`` with every text cut to ``max_chars`` characters (``serving.max_text_chars``).

    Done before any monitor tokenizes: the store may hold longer texts (written before the limit
    was lowered, or by a replay), and one megabyte text must not stall a check in the tokenizer.
    """
    if all(t is None or len(t) <= max_chars for t in window.texts):
        return window
    return replace(window, texts=tuple(None if t is None else t[:max_chars] for t in window.texts))


def decode_embedding(blob: bytes | None) -> EmbeddingArray | None:
    """The serving path stores ``np.asarray(vec, dtype=np.float16).tobytes()``."""
    if not blob:
        return None
    if len(blob) % 2:
        return None  # not float16 bytes; treated as a missing embedding rather than garbage
    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def build_window(
    rows: Sequence[Row],
    labels: Sequence[str],
    *,
    adapter: str | None = None,
    origin: str | None = None,
) -> Window:
    """Turn store records (and reference examples) into one window, in the given order."""
    labels = tuple(labels)
    index = {label: i for i, label in enumerate(labels)}
    n, k = len(rows), len(labels)
    probs = np.full((n, k), np.nan)
    has_pred = np.zeros(n, dtype=bool)
    predicted = np.full(n, -1, dtype=np.int64)
    y_true = np.full(n, -1, dtype=np.int64)
    texts: list[str | None] = []
    features: list[Mapping[str, float] | None] = []
    attrs: list[Mapping[str, str]] = []
    vectors: list[EmbeddingArray | None] = []
    unknown: dict[str, int] = {}
    stamps: list[datetime] = []

    def label_index(label: str | None) -> int:
        if label is None:
            return -1
        if label not in index:
            unknown[label] = unknown.get(label, 0) + 1
            return -1
        return index[label]

    for i, row in enumerate(rows):
        prediction: PredictionRecord | None
        if isinstance(row, LabelledPrediction):
            prediction = row.prediction
            y_true[i] = label_index(row.true_label)
        elif isinstance(row, PredictionRecord):
            prediction = row
        else:
            prediction = None
            y_true[i] = label_index(row.label)
            texts.append(row.text)
            features.append(None)
            attrs.append(dict(row.attributes))
            vectors.append(None)
            continue
        has_pred[i] = True
        predicted[i] = label_index(prediction.label)
        for label, p in prediction.probabilities.items():
            if label in index:
                probs[i, index[label]] = float(p) if p is not None else np.nan
        texts.append(prediction.text)
        features.append(prediction.text_features)
        attrs.append(dict(prediction.attributes))
        vectors.append(decode_embedding(prediction.embedding))
        stamps.append(prediction.ts)

    return Window(
        labels=labels,
        texts=tuple(texts),
        probabilities=probs,
        has_prediction=has_pred,
        predicted=predicted,
        y_true=y_true,
        embeddings=_stack(vectors),
        attributes=tuple(attrs),
        adapter=adapter,
        start=min(stamps) if stamps else None,
        end=max(stamps) if stamps else None,
        unknown_labels=unknown,
        origin=origin,
        text_features=tuple(features) if any(features) else (),
    )


def _stack(vectors: Sequence[EmbeddingArray | None]) -> EmbeddingArray | None:
    """Stack embeddings; rows missing one, or of another width than the most common, are NaN."""
    widths = [len(v) for v in vectors if v is not None]
    if not widths:
        return None
    values, counts = np.unique(np.asarray(widths), return_counts=True)
    d = int(values[np.argmax(counts)])
    out = np.full((len(vectors), d), np.nan, dtype=np.float32)
    for i, v in enumerate(vectors):
        if v is not None and len(v) == d:
            out[i] = v
    return out


def attach_labels(
    predictions: Sequence[PredictionRecord], labelled: Sequence[LabelledPrediction]
) -> list[PredictionRecord | LabelledPrediction]:
    """The predictions in their order, each joined with its feedback when there is some."""
    by_id = {lp.prediction.id: lp for lp in labelled}
    return [by_id.get(p.id, p) for p in predictions]
