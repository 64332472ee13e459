"""The thin I/O edge of monitoring: windows from the store in, signals to the store and to
Prometheus out. Everything that decides lives in the pure modules; this file only moves data."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Engine

from adaptd.datasets.records import Example
from adaptd.metrics import Metrics
from adaptd.monitoring.detectors.text import Tokenizer
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.monitoring.windows import Row, Window, attach_labels, build_window
from adaptd.signals import Signal, Status
from adaptd.storage import repository
from adaptd.storage.records import LabelledPrediction, MonitorResult

logger = logging.getLogger(__name__)

ReferenceExample = Example | LabelledPrediction


def build_windows(
    engine: Engine,
    settings: MonitorsSettings,
    active_adapter_version: str | None,
    reference_examples: Sequence[ReferenceExample],
    now: datetime,
    *,
    labels: Sequence[str],
) -> tuple[Window, Window]:
    """Reference = ``reference_examples`` (the active adapter's validation data; scored rows as
    LabelledPrediction carry probabilities for calibration) plus the adapter's first
    ``reference_window`` live predictions; current = the last ``current_window`` predictions of the
    adapter (or of any adapter when none is active), within ``current_minutes`` when set.
    Feedback is joined onto both."""
    adapter = active_adapter_version
    first = (
        repository.first_predictions(engine, adapter=adapter, limit=settings.reference_window)
        if adapter is not None
        else []
    )
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
    reference_rows: list[Row] = [*reference_examples, *attach_labels(first, labelled)]
    reference = build_window(reference_rows, labels, adapter=adapter)
    current = build_window(attach_labels(recent, labelled), labels, adapter=adapter)
    return reference, current


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


def export_signals(metrics: Metrics, signals: Sequence[Signal]) -> None:
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
