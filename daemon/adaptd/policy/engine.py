"""The policy engine: one pure step from (policies, signals, state, now) to decisions and new state.

Per policy and check, in this order:

1. Not tripped: the trip condition is evaluated. Unknown (insufficient data, a failed monitor, a
   missing signal or baseline) changes nothing and is reported once as a suppression. Known
   results enter the window of the last ``m`` results; ``n`` true ones trip the policy (``for: N``
   is ``n_of_m: {n: N, m: N}``, i.e. N consecutive). A trip makes the action due.
2. Tripped: the clear condition (default: the trip condition is false) must hold on
   ``clear_for`` consecutive checks; then the policy clears and a due action is dropped.
   With ``repeat_after``, a policy still tripped that long after its last action acts again.
3. A due action runs unless the cooldown since the last action has not passed or the budget (at
   most ``max_per_day`` actions in any 24 hours) is spent; then it stays due and the suppression
   is reported once. It runs on the first later check where both allow it.

The function reads no clock and no store: ``now`` and the inputs decide everything, so the same
call always gives the same answer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from adaptd.policy.conditions import Observation, evaluate_condition
from adaptd.policy.schema import Policy, RetrainAction
from adaptd.policy.state import PolicyState, PolicyStates
from adaptd.signals import Signal
from adaptd.storage.records import Event

BUDGET_WINDOW = timedelta(hours=24)


class DecisionKind(enum.StrEnum):
    TRIP = "trip"
    CLEAR = "clear"
    SUPPRESSED = "suppressed"
    ACTION = "action"


class Suppression(enum.StrEnum):
    INSUFFICIENT_DATA = "insufficient_data"
    COOLDOWN = "cooldown"
    BUDGET = "budget"


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationContext:
    """What the engine needs beyond the signals: the active adapter and its validation values."""

    adapter: str | None = None
    #: signal name -> the active adapter's value of it at validation (for relative_to: validation)
    validation: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """One thing a policy decided at one check; each becomes an event in the store."""

    policy: str
    kind: DecisionKind
    ts: datetime
    #: the policy's action: alert, retrain or rollback
    action: str
    message: str
    reason: Suppression | None = None
    #: retrain overrides, for kind ACTION of a retrain policy
    overrides: Mapping[str, Any] = field(default_factory=dict)
    #: signal name -> value and resolved thresholds seen at this check
    observations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_event(self) -> Event:
        details: dict[str, Any] = {"policy": self.policy, "action": self.action}
        if self.reason is not None:
            details["reason"] = self.reason.value
        if self.overrides:
            details["overrides"] = dict(self.overrides)
        if self.observations:
            details["signals"] = {k: dict(v) for k, v in self.observations.items()}
        return Event(
            ts=self.ts,
            kind=self.kind.value,
            source=f"policy/{self.policy}",
            message=self.message,
            details=details,
        )


def evaluate(
    policies: Sequence[Policy],
    signals: Sequence[Signal],
    state: PolicyStates,
    now: datetime,
    context: EvaluationContext | None = None,
) -> tuple[list[Decision], PolicyStates]:
    """Decisions of every enabled policy for one check, and the states after it.

    States of policies not in ``policies`` are kept unchanged (a policy disabled for a while
    resumes where it was); when several signals share a name the last one counts.
    """
    context = context or EvaluationContext()
    by_name = {s.name: s for s in signals}
    decisions: list[Decision] = []
    states = dict(state.by_policy)
    for policy in policies:
        if not policy.enabled:
            continue
        made, states[policy.name] = _step(policy, by_name, state.get(policy.name), now, context)
        decisions.extend(made)
    return decisions, PolicyStates(states)


def _summary(seen: list[Observation]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for o in seen:
        entry: dict[str, Any] = {"value": o.value, **o.thresholds}
        if o.unknown_reason is not None:
            entry["unknown"] = o.unknown_reason
        out[o.signal] = entry
    return out


def _step(
    policy: Policy,
    signals: Mapping[str, Signal],
    st: PolicyState,
    now: datetime,
    context: EvaluationContext,
) -> tuple[list[Decision], PolicyState]:
    decisions: list[Decision] = []
    action = policy.action.type
    overrides = (
        policy.action.overrides.model_dump(exclude_none=True)
        if isinstance(policy.action, RetrainAction)
        else {}
    )

    def decide(kind: DecisionKind, message: str, seen: list[Observation], **kw: Any) -> None:
        decisions.append(
            Decision(
                policy=policy.name,
                kind=kind,
                ts=now,
                action=action,
                message=message,
                observations=_summary(seen),
                **kw,
            )
        )

    def suppress(reason: Suppression, message: str, seen: list[Observation]) -> None:
        nonlocal st
        if st.last_suppression != reason.value:
            decide(DecisionKind.SUPPRESSED, message, seen, reason=reason)
        st = st.evolve(last_suppression=reason.value)

    seen: list[Observation] = []
    holds = evaluate_condition(policy.trip, signals, context.validation, policy.min_samples, seen)
    st = st.evolve(last_check=now)

    if not st.tripped:
        if holds is None:
            suppress(Suppression.INSUFFICIENT_DATA, _unknown_message(seen), seen)
        else:
            n, m = policy.window
            history = (*st.history, holds)[-m:]
            st = st.evolve(history=history)
            if st.last_suppression == Suppression.INSUFFICIENT_DATA.value:
                st = st.evolve(last_suppression=None)
            if sum(history) >= n:
                st = st.evolve(
                    tripped=True,
                    tripped_at=now,
                    history=(),
                    clear_streak=0,
                    action_due=True,
                    last_suppression=None,
                )
                decide(
                    DecisionKind.TRIP,
                    f"tripped ({sum(history)} of the last {len(history)} checks held)",
                    seen,
                )
    else:
        if policy.clear is None:
            clears = None if holds is None else not holds
            clear_seen = seen
        else:
            clear_seen = []
            clears = evaluate_condition(
                policy.clear, signals, context.validation, policy.min_samples, clear_seen
            )
        if clears is None:
            suppress(Suppression.INSUFFICIENT_DATA, _unknown_message(clear_seen), clear_seen)
        elif clears:
            streak = st.clear_streak + 1
            if streak >= policy.clear_for:
                decide(DecisionKind.CLEAR, f"cleared after {streak} check(s)", clear_seen)
                return decisions, st.evolve(
                    tripped=False,
                    tripped_at=None,
                    history=(),
                    clear_streak=0,
                    action_due=False,
                    last_suppression=None,
                )
            st = st.evolve(clear_streak=streak)
        else:
            st = st.evolve(clear_streak=0)
            if (
                policy.repeat_after is not None
                and not st.action_due
                and holds is True
                and st.last_action is not None
                and now - st.last_action >= policy.repeat_after
            ):
                st = st.evolve(action_due=True, last_suppression=None)

    if st.tripped and st.action_due:
        recent = tuple(t for t in st.recent_actions if now - t < BUDGET_WINDOW)
        st = st.evolve(recent_actions=recent)
        if st.last_action is not None and now - st.last_action < policy.cooldown:
            until = st.last_action + policy.cooldown
            suppress(Suppression.COOLDOWN, f"cooldown until {until.isoformat()}", seen)
        elif policy.max_per_day is not None and len(recent) >= policy.max_per_day:
            suppress(
                Suppression.BUDGET,
                f"budget spent: {len(recent)} of {policy.max_per_day} actions in 24 hours",
                seen,
            )
        else:
            extra = ", ".join(f"{k}={v}" for k, v in overrides.items())
            decide(
                DecisionKind.ACTION,
                f"{action} ({extra})" if extra else action,
                seen,
                overrides=overrides,
            )
            st = st.evolve(
                action_due=False,
                last_action=now,
                recent_actions=(*recent, now),
                last_suppression=None,
            )
    return decisions, st


def _unknown_message(seen: list[Observation]) -> str:
    reasons = sorted({f"{o.signal}: {o.unknown_reason}" for o in seen if o.holds is None})
    return "insufficient data (" + "; ".join(reasons) + ")" if reasons else "insufficient data"
