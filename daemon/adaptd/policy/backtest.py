"""Backtest: replay stored checks through policies, from a fresh state, to see when they would act.

Operators tune thresholds, hysteresis and cooldowns against what their traffic actually did
before deploying a policy (``adaptd policy backtest``). The replay is the engine itself, check by
check, with each check's own timestamp as ``now``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from itertools import groupby
from typing import Any

from adaptd.policy.engine import Decision, DecisionKind, EvaluationContext, evaluate
from adaptd.policy.schema import Policy
from adaptd.policy.state import PolicyStates
from adaptd.signals import Signal, Status
from adaptd.storage.records import MonitorResult

#: the key under which a stored result keeps the signal's reference value
REFERENCE_VALUE_KEY = "reference_value"


def signal_to_result(signal: Signal) -> MonitorResult:
    """The stored form of a signal (the reference value travels in ``details``)."""
    details = dict(signal.details)
    if signal.reference_value is not None:
        details[REFERENCE_VALUE_KEY] = signal.reference_value
    return MonitorResult(
        ts=signal.ts,
        signal=signal.name,
        value=signal.value,
        status=signal.status.value,
        adapter=signal.adapter,
        n_reference=signal.n_reference,
        n_current=signal.n_current,
        details=details or None,
    )


def result_to_signal(result: MonitorResult) -> Signal:
    try:
        status = Status(result.status)
    except ValueError:
        status = Status.ERROR
    details = dict(result.details or {})
    reference = details.get(REFERENCE_VALUE_KEY)
    return Signal(
        name=result.signal,
        ts=result.ts,
        status=status,
        value=result.value if status in (Status.OK, Status.DRIFT) else None,
        n_reference=result.n_reference or 0,
        n_current=result.n_current or 0,
        reference_value=float(reference) if isinstance(reference, int | float) else None,
        adapter=result.adapter,
        details=details,
    )


def checks_from_results(results: Iterable[MonitorResult]) -> list[tuple[datetime, list[Signal]]]:
    """Stored results grouped into checks: the results of one check share its timestamp."""
    ordered = sorted(results, key=lambda r: r.ts)
    return [
        (ts, [result_to_signal(r) for r in group])
        for ts, group in groupby(ordered, key=lambda r: r.ts)
    ]


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestReport:
    checks: int
    first: datetime | None
    last: datetime | None
    decisions: Sequence[Decision]
    final_state: PolicyStates = field(default_factory=PolicyStates)

    def counts(self) -> dict[str, dict[str, int]]:
        """Per policy: trips, clears, actions, and suppressions by reason."""
        out: dict[str, Counter[str]] = {}
        for d in self.decisions:
            c = out.setdefault(d.policy, Counter())
            key = f"suppressed_{d.reason.value}" if d.reason is not None else d.kind.value
            c[key] += 1
        return {name: dict(c) for name, c in out.items()}

    def actions(self, action: str | None = None) -> list[Decision]:
        return [
            d
            for d in self.decisions
            if d.kind is DecisionKind.ACTION and (action is None or d.action == action)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "checks": self.checks,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "summary": self.counts(),
            "decisions": [
                {
                    "ts": d.ts.isoformat(),
                    "policy": d.policy,
                    "kind": d.kind.value,
                    "action": d.action,
                    "reason": d.reason.value if d.reason else None,
                    "message": d.message,
                    "overrides": dict(d.overrides),
                    "signals": {k: dict(v) for k, v in d.observations.items()},
                }
                for d in self.decisions
            ],
        }


def backtest(
    policies: Sequence[Policy],
    checks: Sequence[tuple[datetime, Sequence[Signal]]],
    context: EvaluationContext | None = None,
    validation_by_adapter: Mapping[str, Mapping[str, float]] | None = None,
    label_times: Sequence[datetime] | None = None,
) -> BacktestReport:
    """Run ``policies`` over ``checks`` (oldest first) from a fresh state.

    ``validation_by_adapter`` gives the validation values of each adapter that served, so a
    ``relative_to: validation`` threshold follows the adapter active at each check.
    ``label_times`` (sorted) are when the labels arrived: with them a retrain waits for its
    ``min_new_labels`` as in the daemon. A backtest does not know what the runs would have
    brought, so it shows each episode's first attempt, not the retries after a rejection.
    """
    state = PolicyStates()
    decisions: list[Decision] = []
    for now, signals in checks:
        ctx = context or EvaluationContext()
        adapters = {s.adapter for s in signals if s.adapter is not None}
        if validation_by_adapter and len(adapters) == 1:
            adapter = adapters.pop()
            ctx = replace(
                ctx, adapter=adapter, validation=validation_by_adapter.get(adapter, ctx.validation)
            )
        if label_times is not None:
            ctx = replace(ctx, labels_total=bisect_right(label_times, now))
        made, state = evaluate(policies, signals, state, now, ctx)
        decisions.extend(made)
    return BacktestReport(
        checks=len(checks),
        first=checks[0][0] if checks else None,
        last=checks[-1][0] if checks else None,
        decisions=decisions,
        final_state=state,
    )
