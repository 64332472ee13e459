"""Signals: what monitors produce, what policies read, what /metrics and the store export.

This module is the contract between ``monitoring/`` (producers), ``policy/`` (consumers) and
``control/`` (which stores and exports them). A signal name is dotted and stable, for example
``drift.embedding.auc`` or ``bias.gender.dp_diff``; the catalog of names lives in
``adaptd.monitoring.catalog`` and policy validation checks names against it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class Status(enum.StrEnum):
    OK = "ok"
    DRIFT = "drift"  # the monitor's own test rejects "no change" (or a bias bound is exceeded)
    INSUFFICIENT_DATA = "insufficient_data"  # below min_samples: never a verdict
    ERROR = "error"  # the inputs were unusable (e.g. NaN probabilities); details say why


@dataclass(frozen=True, slots=True, kw_only=True)
class Signal:
    """One measured value of one signal at one check."""

    name: str
    ts: datetime
    status: Status
    #: None exactly when status is INSUFFICIENT_DATA or ERROR
    value: float | None
    n_reference: int
    n_current: int
    #: the same statistic on the reference window, when it has one (for relative thresholds)
    reference_value: float | None = None
    adapter: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_verdict(self) -> bool:
        return self.status in (Status.OK, Status.DRIFT)


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalSpec:
    """What a signal name means, for validation, docs and the dashboards."""

    name: str
    description: str
    #: the direction in which the value gets worse (used by relative thresholds and backtests)
    higher_is_worse: bool
    #: a closed range when the value has one, e.g. (0.0, 1.0)
    bounds: tuple[float, float] | None = None
