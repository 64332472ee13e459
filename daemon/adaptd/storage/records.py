"""What the store hands out: our own frozen dataclasses, never SQLAlchemy rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionRecord:
    id: str
    ts: datetime
    adapter: str
    text: str | None
    text_hash: str
    label: str
    score: float
    probabilities: dict[str, float]
    embedding: bytes | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    truncated: bool = False
    latency_ms: float | None = None
    #: the text's descriptors (:mod:`adaptd.datasets.descriptors`), kept only when the text is
    #: not (``privacy.text: hashed``), so that text drift is still watched
    text_features: dict[str, float] | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackRecord:
    prediction_id: str
    label: str
    ts: datetime
    source: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelledPrediction:
    """A prediction joined with the label fed back for it."""

    prediction: PredictionRecord
    true_label: str
    feedback_ts: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterRecord:
    version: str
    status: str
    path: str
    created: datetime
    parent: str | None = None
    promoted: datetime | None = None
    reason: str | None = None
    data_window: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    config: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrainRun:
    id: int
    started: datetime
    status: str
    finished: datetime | None = None
    reason: str | None = None
    policy: str | None = None
    parent: str | None = None
    candidate: str | None = None
    samples: int | None = None
    error: str | None = None
    details: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorResult:
    ts: datetime
    signal: str
    value: float | None
    status: str
    adapter: str | None = None
    n_reference: int | None = None
    n_current: int | None = None
    details: dict[str, Any] | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    ts: datetime
    kind: str
    source: str
    message: str
    details: dict[str, Any] | None = None
    id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferenceRow:
    """One scored validation row of an adapter: what it predicted on data it never trained on."""

    adapter: str
    slice: str
    position: int
    text: str | None
    true_label: str
    label: str
    probabilities: dict[str, float]
    embedding: bytes | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProbationRecord:
    """A promoted adapter watched against the version it replaced."""

    id: int
    version: str
    previous: str
    started: datetime
    source: str
    status: str
    finished: datetime | None = None
    reason: str | None = None
