"""A small signal catalog and signal builders for policy tests.

The real catalog is the monitors' (``adaptd.monitoring.catalog``); these entries copy the names
and ranges of the signals the shipped policies use, so the policy tests do not depend on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from adaptd.signals import Signal, SignalSpec, Status

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICIES_DIR = Path(__file__).resolve().parents[3] / "policies"

CATALOG: dict[str, SignalSpec] = {
    s.name: s
    for s in [
        SignalSpec(
            name="drift.embedding.auc",
            description="domain classifier AUC",
            higher_is_worse=True,
            bounds=(0.0, 1.0),
        ),
        SignalSpec(
            name="performance.accuracy",
            description="accuracy",
            higher_is_worse=False,
            bounds=(0, 1),
        ),
        SignalSpec(
            name="performance.estimated_accuracy",
            description="CBPE accuracy",
            higher_is_worse=False,
            bounds=(0.0, 1.0),
        ),
        SignalSpec(
            name="bias.gender.dp_diff", description="DP diff", higher_is_worse=True, bounds=(0, 1)
        ),
        SignalSpec(
            name="bias.gender.eo_diff", description="EO diff", higher_is_worse=True, bounds=(0, 1)
        ),
        SignalSpec(name="drift.text.length", description="length drift", higher_is_worse=True),
    ]
}


def sig(
    name: str,
    value: float | None,
    *,
    ts: datetime = T0,
    status: Status | None = None,
    n: int = 2000,
    reference: float | None = None,
) -> Signal:
    if status is None:
        status = Status.OK if value is not None else Status.INSUFFICIENT_DATA
    return Signal(
        name=name,
        ts=ts,
        status=status,
        value=value,
        n_reference=n,
        n_current=n,
        reference_value=reference,
    )
