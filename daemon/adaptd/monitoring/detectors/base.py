"""What every detector shares: the context of one check and the three ways a signal can end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from adaptd.monitoring.settings import MonitorsSettings
from adaptd.signals import Signal, Status


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckContext:
    """Values every signal of one check carries."""

    now: datetime
    settings: MonitorsSettings
    adapter: str | None = None


def verdict(
    ctx: CheckContext,
    name: str,
    value: float,
    *,
    drifted: bool,
    n_reference: int,
    n_current: int,
    reference_value: float | None = None,
    details: Mapping[str, Any] | None = None,
) -> Signal:
    return Signal(
        name=name,
        ts=ctx.now,
        status=Status.DRIFT if drifted else Status.OK,
        value=float(value),
        n_reference=n_reference,
        n_current=n_current,
        reference_value=None if reference_value is None else float(reference_value),
        adapter=ctx.adapter,
        details=dict(details or {}),
    )


def insufficient(
    ctx: CheckContext,
    name: str,
    *,
    n_reference: int,
    n_current: int,
    reason: str | None = None,
) -> Signal:
    needed = ctx.settings.min_samples
    details: dict[str, Any] = {"min_samples": needed}
    details["reason"] = reason or (
        f"needs {needed} samples on each side, has {n_reference} reference and {n_current} current"
    )
    return Signal(
        name=name,
        ts=ctx.now,
        status=Status.INSUFFICIENT_DATA,
        value=None,
        n_reference=n_reference,
        n_current=n_current,
        adapter=ctx.adapter,
        details=details,
    )


def error(ctx: CheckContext, name: str, reason: str, *, n_reference: int, n_current: int) -> Signal:
    return Signal(
        name=name,
        ts=ctx.now,
        status=Status.ERROR,
        value=None,
        n_reference=n_reference,
        n_current=n_current,
        adapter=ctx.adapter,
        details={"reason": reason},
    )


def enough(ctx: CheckContext, n_reference: int, n_current: int) -> bool:
    floor = ctx.settings.min_samples
    return n_reference >= floor and n_current >= floor
