"""The thin I/O edge of monitoring: windows from the store in, signals to the store and to
Prometheus out. Everything that decides lives in the pure modules; this file only moves data."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine

from adaptd.datasets.descriptors import Tokenizer
from adaptd.datasets.records import Example
from adaptd.monitoring.metrics import MonitorMetrics
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.monitoring.windows import Row, Window, attach_labels, build_window, cut_texts
from adaptd.signals import Signal, Status
from adaptd.storage import repository
from adaptd.storage.records import (
    LabelledPrediction,
    MonitorResult,
    PredictionRecord,
    ReferenceRow,
)

logger = logging.getLogger(__name__)

ReferenceExample = Example | LabelledPrediction
#: the stored validation slice that is an adapter's monitoring reference
REFERENCE_SLICE = "recent"


def reference_predictions(rows: Sequence[ReferenceRow]) -> list[LabelledPrediction]:
    """Stored validation rows as labelled predictions, the shape windows are built from."""
    out = []
    for r in rows:
        stamp = r.created or datetime.min.replace(tzinfo=UTC)
        prediction = PredictionRecord(
            id=f"reference:{r.adapter}:{r.slice}:{r.position}",
            ts=stamp,
            adapter=r.adapter,
            text=r.text,
            text_hash="",
            label=r.label,
            score=max(r.probabilities.values(), default=0.0),
            probabilities=r.probabilities,
            embedding=r.embedding,
            attributes=r.attributes,
        )
        out.append(
            LabelledPrediction(prediction=prediction, true_label=r.true_label, feedback_ts=stamp)
        )
    return out


def build_windows(
    engine: Engine,
    settings: MonitorsSettings,
    active_adapter_version: str | None,
    reference_examples: Sequence[ReferenceExample],
    now: datetime,
    *,
    labels: Sequence[str],
    max_text_chars: int | None = None,
) -> tuple[Window, Window]:
    """Reference and current windows of the active adapter; feedback is joined onto both.
    Texts are cut to ``max_text_chars`` (``serving.max_text_chars``) before any monitor sees
    them (:func:`~adaptd.monitoring.windows.cut_texts`).

    Reference: ``reference_examples`` plus the adapter's own scored validation rows of the
    recent slice (stored when it was promoted: the newest labels before its promotion, which
    neither it nor its champion trained on), so a shift that starts right after a promotion
    is measured against data from before it. The golden rows are stored too but left out here:
    after an adaptation they are the old domain, and mixing them in would make the adapter's
    own traffic look drifted. When fewer than ``min_samples`` validation rows are stored, the
    adapter's first live predictions top the reference up to ``min_samples``; with none stored
    (an imported adapter) the first ``reference_window`` live predictions are the reference, as
    before. ``Window.origin`` says which.

    Current: the last ``current_window`` predictions of the adapter (of any adapter when none
    is active), within ``current_minutes`` when set, never a row of the reference.
    """
    adapter = active_adapter_version
    stored = (
        [r for r in repository.reference_rows(engine, adapter) if r.slice == REFERENCE_SLICE]
        if adapter is not None
        else []
    )
    live_needed = (
        settings.reference_window if not stored else max(0, settings.min_samples - len(stored))
    )
    first = (
        repository.first_predictions(engine, adapter=adapter, limit=live_needed)
        if adapter is not None and live_needed
        else []
    )
    if stored:
        origin = f"validation rows of the adapter ({len(stored)})"
        if first:
            origin += f" + its first live predictions ({len(first)})"
    else:
        origin = f"first live predictions of the adapter ({len(first)})" if adapter else "none"
    since = now - timedelta(minutes=settings.current_minutes) if settings.current_minutes else None
    recent = repository.recent_predictions(
        engine,
        limit=settings.current_window,
        since=since,
        until=now + timedelta(microseconds=1),
        adapter=adapter,
        oldest_first=True,
    )
    first_ids = {p.id for p in first}
    # A row is on one side only: a young adapter's first predictions are its reference, and the
    # current window is what came after them (empty at first, hence "insufficient data").
    recent = [p for p in recent if p.id not in first_ids]
    labelled = repository.labelled_predictions_for(engine, [p.id for p in [*first, *recent]])
    reference_rows: list[Row] = [
        *reference_examples,
        *reference_predictions(stored),
        *attach_labels(first, labelled),
    ]
    reference = build_window(reference_rows, labels, adapter=adapter, origin=origin)
    current = build_window(attach_labels(recent, labelled), labels, adapter=adapter)
    if max_text_chars is None:
        return reference, current
    return cut_texts(reference, max_text_chars), cut_texts(current, max_text_chars)


def hf_tokenizer(tokenizer: object) -> Tokenizer:
    """Adapt a Hugging Face tokenizer to the descriptors' batch callable (pieces, no specials)."""

    def tokenize(texts: Sequence[str]) -> Sequence[Sequence[str]]:
        encoded = tokenizer(list(texts), add_special_tokens=False)  # type: ignore[operator]
        convert = tokenizer.convert_ids_to_tokens  # type: ignore[attr-defined]
        return [convert(ids) for ids in encoded["input_ids"]]

    return tokenize


def to_result(signal: Signal) -> MonitorResult:
    details = dict(signal.details)
    if signal.reference_value is not None:
        details["reference_value"] = signal.reference_value
    return MonitorResult(
        ts=signal.ts,
        signal=signal.name,
        value=signal.value,
        status=str(signal.status),
        adapter=signal.adapter,
        n_reference=signal.n_reference,
        n_current=signal.n_current,
        details=_jsonable(details),
    )


def _jsonable(value: Any) -> Any:
    """JSON columns reject numpy scalars and NaN; turn them into plain values."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def store_signals(engine: Engine, signals: Sequence[Signal]) -> None:
    repository.add_monitor_results(engine, [to_result(s) for s in signals])


def export_signals(metrics: MonitorMetrics, signals: Sequence[Signal]) -> None:
    """Set the gauges: value (removed while there is no verdict), one-hot status, sample sizes."""
    for s in signals:
        if s.value is None:
            try:
                metrics.signal_value.remove(s.name)
            except KeyError:
                pass
        else:
            metrics.signal_value.labels(s.name).set(s.value)
        for status in Status:
            metrics.signal_status.labels(s.name, str(status)).set(
                1.0 if s.status is status else 0.0
            )
        metrics.signal_samples.labels(s.name, "reference").set(s.n_reference)
        metrics.signal_samples.labels(s.name, "current").set(s.n_current)
