"""The policy engine: one pure step from (policies, signals, state, now) to decisions and new state.

Per policy and check, in this order:

1. Not tripped: the trip condition is evaluated. Unknown (insufficient data, a failed monitor, a
   missing signal or baseline) changes nothing and is reported once as a suppression. Known
   results enter the window of the last ``m`` results; ``n`` true ones trip the policy (``for: N``
   is ``n_of_m: {n: N, m: N}``, i.e. N consecutive). A trip makes the action due.
2. Tripped: the clear condition (default: the trip condition is false) must hold on
   ``clear_for`` consecutive checks; then the policy clears and a due action is dropped.
   With ``repeat_after``, a policy still tripped that long after its last action acts again.
3. A due retrain first waits for evidence: the labelled examples that arrived since the shift
   must number ``min_new_labels`` (at least ``retraining.min_labels``). The shift is placed
   before the *second-to-last* calm check (known false, none held since): the last calm check's
   window may already hold part of the shift, since a condition on a window holds only once
   enough of it moved; one check interval of margin covers that lag whenever the monitors'
   window fills within a check interval, at the price of counting a few pre-shift labels (they
   train like replayed data; the held-out slice is the newest labels). Without such a check (a
   fresh start) every stored label counts. The wait is reported once when it starts and once
   when it ends, and the state shows how many labels it still awaits.
4. A due action runs unless the cooldown has not passed or the budget (at most ``max_per_day``
   actions in any 24 hours) is spent; then it stays due and the suppression is reported once.
   It runs on the first later check where both allow it. The cooldown starts at an alert or a
   rollback, and at a retrain's *promotion*: :func:`record_retrain` feeds a run's outcome back.
   A promotion ends the episode (the policy starts afresh); a rejected or failed run makes the
   retrain due again once the labels since the shift have grown by ``retry_growth``.
5. Refinements (``refinements: N``): a promotion does not end the labels' episode. The policy
   is then *refining*: once the labels since the shift have grown by ``retry_growth`` over what
   the last run used, it retrains on all of them again, up to N times, whatever the outcome of
   each. The first run is trained on the labels that were there when the policy tripped, a
   few hundred at best; the shift goes on bringing labels, and an oracle trained on all of them
   is what a served adapter is measured against (bench/adaptation/RESULTS.md). Refinements are
   bounded by ``max_per_day``; the cooldown, which protects a fresh adapter from a new trip,
   does not hold them back. A new trip ends them (a new episode). The newest labels judge
   each refinement (the job's holdout): with ``retry_growth`` at least 1 / (1 -
   ``retraining.holdout_fraction``), 1.25 by default, the adapter it refines never trained on
   them; below that the champion is judged partly on its own training rows, which can only
   make a refinement harder to promote.

The function reads no clock and no store: ``now`` and the inputs decide everything, so the same
call always gives the same answer.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
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
    #: a due retrain stopped waiting for labels (enough arrived, or the policy cleared)
    WAIT_ENDED = "wait_ended"
    #: what a retrain's outcome did to the policy (episode over, or the next attempt's target)
    OUTCOME = "outcome"


class Suppression(enum.StrEnum):
    INSUFFICIENT_DATA = "insufficient_data"
    COOLDOWN = "cooldown"
    BUDGET = "budget"
    AWAITING_LABELS = "awaiting_labels"


#: run outcomes (``RunOutcome.status`` of the retraining job) that end an episode: the candidate
#: went live, or waits for an operator who will decide
ENDS_EPISODE = frozenset({"promoted", "awaiting_approval"})
#: outcomes after which more data may help: the next attempt waits for the labels to grow
RETRY_ON_GROWTH = frozenset({"rejected", "failed", "coalesced"})


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluationContext:
    """What the engine needs beyond the signals: the active adapter and its validation values."""

    adapter: str | None = None
    #: signal name -> the active adapter's value of it at validation (for relative_to: validation)
    validation: Mapping[str, float] = field(default_factory=dict)
    #: trainable labelled examples in the store so far, a running total: the labels of an
    #: episode are the difference of two totals. None: not counted (a backtest without labels),
    #: then retrain policies act on the trip as they did before they could wait.
    labels_total: int | None = None
    #: the fewest labels a retrain run accepts (retraining.min_labels): a floor under every
    #: policy's min_new_labels, so a run that would refuse its data is never started
    min_labels: int = 0


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
    #: a retrain's data: labels given at or after ``since`` (None: every stored label) ...
    since: datetime | None = None
    #: ... of which there were this many at the decision (None: not counted)
    new_labels: int | None = None
    #: a refinement: a retrain after this episode's promotion, on its grown labels
    refinement: bool = False

    def to_event(self) -> Event:
        details: dict[str, Any] = {"policy": self.policy, "action": self.action}
        if self.reason is not None:
            details["reason"] = self.reason.value
        if self.since is not None:
            details["since"] = self.since.isoformat()
        if self.new_labels is not None:
            details["new_labels"] = self.new_labels
        if self.overrides:
            details["overrides"] = dict(self.overrides)
        if self.refinement:
            details["refinement"] = True
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
    retrain = policy.action if isinstance(policy.action, RetrainAction) else None
    overrides = retrain.overrides.model_dump(exclude_none=True) if retrain is not None else {}
    total = context.labels_total

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
                st = _trip(st, now, total)
                decide(
                    DecisionKind.TRIP,
                    f"tripped ({sum(history)} of the last {len(history)} checks held)",
                    seen,
                )
        if holds is False and not st.tripped and not any(st.history):
            # Calm: a shift, if one comes, is after the calm check before this one (none yet, as
            # on a fresh start: every stored label may be from after it).
            st = st.evolve(
                baseline_at=st.calm_at,
                baseline_labels=st.calm_labels,
                calm_at=now,
                calm_labels=total,
            )
        if not st.tripped and st.refining and retrain is not None and total is not None:
            st = _refine(policy, st, now, total, overrides, decide, suppress, seen)
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
                if st.waiting_since is not None:
                    decide(DecisionKind.WAIT_ENDED, "wait for labels ended: cleared", clear_seen)
                decide(DecisionKind.CLEAR, f"cleared after {streak} check(s)", clear_seen)
                return decisions, _idle(st, now, total)
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

    if st.tripped and retrain is not None and total is not None:
        st = st.evolve(new_labels=max(0, total - (st.episode_labels or 0)))

    if st.tripped and st.action_due:
        recent = tuple(t for t in st.recent_actions if now - t < BUDGET_WINDOW)
        st = st.evolve(recent_actions=recent)
        if retrain is not None and st.new_labels is not None:
            needed = st.labels_needed
            if needed is None:
                needed = max(retrain.min_new_labels, context.min_labels)
            new = st.new_labels
            st = st.evolve(labels_needed=needed)
            if new < needed:
                # One event when the wait starts (not one per reason change, as suppress() does:
                # an unknown check in the middle of a wait does not restart it).
                if st.waiting_since is None:
                    decide(
                        DecisionKind.SUPPRESSED,
                        f"waiting for {needed - new} more labelled examples "
                        f"({new} of {needed} {_since_text(st.episode_since)})",
                        seen,
                        reason=Suppression.AWAITING_LABELS,
                    )
                    st = st.evolve(waiting_since=now)
                return decisions, st
            if st.waiting_since is not None:
                decide(
                    DecisionKind.WAIT_ENDED,
                    f"wait for labels ended: {new} of {needed} "
                    f"{_since_text(st.episode_since)} after "
                    f"{_minutes(now - st.waiting_since)}",
                    seen,
                )
                st = st.evolve(waiting_since=None)
        if st.cooldown_from is not None and now - st.cooldown_from < policy.cooldown:
            until = st.cooldown_from + policy.cooldown
            suppress(Suppression.COOLDOWN, f"cooldown until {until.isoformat()}", seen)
        elif (spent := _budget_spent(policy, recent)) is not None:
            suppress(Suppression.BUDGET, spent, seen)
        else:
            extra = ", ".join(f"{k}={v}" for k, v in overrides.items())
            if retrain is not None and st.new_labels is not None:
                data = f"{st.new_labels} labels {_since_text(st.episode_since)}"
                extra = f"{data}, {extra}" if extra else data
            decide(
                DecisionKind.ACTION,
                f"{action} ({extra})" if extra else action,
                seen,
                overrides=overrides,
                since=st.episode_since if retrain is not None else None,
                new_labels=st.new_labels if retrain is not None else None,
            )
            st = st.evolve(
                action_due=False,
                last_action=now,
                recent_actions=(*recent, now),
                last_suppression=None,
                attempt_labels=st.new_labels,
                # A retrain's cooldown starts when its candidate is promoted (record_retrain).
                cooldown_from=st.cooldown_from if retrain is not None else now,
            )
    return decisions, st


def _refine(
    policy: Policy,
    st: PolicyState,
    now: datetime,
    total: int,
    overrides: Mapping[str, Any],
    decide: Callable[..., None],
    suppress: Callable[[Suppression, str, list[Observation]], None],
    seen: list[Observation],
) -> PolicyState:
    """A refining policy: retrain once the episode's labels have grown enough (step 5)."""
    new = max(0, total - (st.refine_labels or 0))
    st = st.evolve(new_labels=new)
    if st.refine_needed is None or new < st.refine_needed:
        return st  # a refinement is running, or the labels have not grown enough yet
    recent = tuple(t for t in st.recent_actions if now - t < BUDGET_WINDOW)
    st = st.evolve(recent_actions=recent)
    spent = _budget_spent(policy, recent)
    if spent is not None:
        suppress(Suppression.BUDGET, spent, seen)
        return st
    left = (st.refine_left or 1) - 1
    extra = ", ".join(f"{k}={v}" for k, v in overrides.items())
    data = f"refinement, {new} labels {_since_text(st.refine_since)}, {left} more allowed"
    decide(
        DecisionKind.ACTION,
        f"{policy.action.type} ({data}{', ' + extra if extra else ''})",
        seen,
        overrides=overrides,
        since=st.refine_since,
        new_labels=new,
        refinement=True,
    )
    return st.evolve(
        refine_left=left,
        refine_needed=None,
        attempt_labels=new,
        last_action=now,
        recent_actions=(*recent, now),
        last_suppression=None,
    )


#: the state of a policy that is not refining
_NOT_REFINING: dict[str, Any] = {
    "refine_left": None,
    "refine_since": None,
    "refine_labels": None,
    "refine_needed": None,
}


def _end_refining(st: PolicyState) -> PolicyState:
    return st.evolve(**_NOT_REFINING)


def _grown(used: int, growth: float) -> int:
    """Labels the next attempt on an episode needs after one on ``used``: at least one more."""
    return max(math.ceil(used * growth), used + 1)


def _budget_spent(policy: Policy, recent: tuple[datetime, ...]) -> str | None:
    """Why the daily budget holds an action back, or None when it does not."""
    if policy.max_per_day is not None and len(recent) >= policy.max_per_day:
        return f"budget spent: {len(recent)} of {policy.max_per_day} actions in 24 hours"
    return None


def _trip(st: PolicyState, now: datetime, total: int | None) -> PolicyState:
    """Tripped: the episode's labels start at the baseline (the calm check before the last)."""
    since, base = st.baseline_at, st.baseline_labels
    if base is None:  # no earlier check counted labels: every stored label is evidence
        since, base = None, 0
    return st.evolve(
        tripped=True,
        tripped_at=now,
        history=(),
        clear_streak=0,
        action_due=True,
        last_suppression=None,
        episode_since=since,
        episode_labels=base if total is not None else None,
        new_labels=None,
        labels_needed=None,
        attempt_labels=None,
        waiting_since=None,
        **_NOT_REFINING,
    )


def _idle(st: PolicyState, now: datetime, total: int | None) -> PolicyState:
    """The episode is over (cleared, or a promotion): start afresh from this moment."""
    return st.evolve(
        tripped=False,
        tripped_at=None,
        history=(),
        clear_streak=0,
        action_due=False,
        last_suppression=None,
        calm_at=now,
        calm_labels=total,
        baseline_at=now,
        baseline_labels=total,
        episode_since=None,
        episode_labels=None,
        new_labels=None,
        labels_needed=None,
        attempt_labels=None,
        waiting_since=None,
        **_NOT_REFINING,
    )


def record_retrain(
    policies: Sequence[Policy],
    state: PolicyStates,
    decision: Decision,
    status: str,
    now: datetime,
    labels_total: int | None = None,
) -> tuple[list[Decision], PolicyStates]:
    """Feed the outcome of the run a retrain decision started back into its policy's state.

    ``status`` is the run's (``promoted``, ``awaiting_approval``, ``rejected``, ``failed``,
    ``cancelled``) or ``coalesced`` when another policy's run was already going. A promotion ends
    the episode and starts the cooldown; a rejected or failed run makes the retrain due again
    once the labels since the shift have grown by ``retry_growth``; a cancelled run (shutdown) is
    due again at once. Pure, like :func:`evaluate`.
    """
    policy = next((p for p in policies if p.name == decision.policy), None)
    if policy is None or not isinstance(policy.action, RetrainAction):
        return [], state
    st = state.get(policy.name)
    action = policy.action
    message: str | None = None
    cooldown = f", cooldown until {(now + policy.cooldown).isoformat()}" if policy.cooldown else ""
    if decision.refinement:
        if status in ENDS_EPISODE:
            st = st.evolve(cooldown_from=now)
        if not st.refining:
            pass  # a new trip ended the refinements while this one ran
        elif status == "cancelled":
            st = st.evolve(refine_left=(st.refine_left or 0) + 1, refine_needed=0)
            message = "refinement cancelled: due again"
        elif status == "awaiting_approval":
            # An operator decides; refining its champion meanwhile would race that decision.
            st = _end_refining(st)
            message = f"refinement {status}: episode over{cooldown}"
        else:
            used = st.attempt_labels or decision.new_labels or 0
            done = f"refinement {status} with {used} labels {_since_text(st.refine_since)}"
            if st.refine_left:
                needed = _grown(used, action.retry_growth)
                st = st.evolve(refine_needed=needed)
                message = f"{done}: next refinement at {needed}"
            else:
                st = _end_refining(st)
                message = f"{done}: episode over, no refinement left{cooldown}"
    elif status in ENDS_EPISODE:
        attempt, since, base = st.attempt_labels, st.episode_since, st.episode_labels
        refine = (
            status == "promoted"
            and action.refinements > 0
            and st.tripped
            and attempt is not None
            and base is not None
        )
        st = (_idle(st, now, labels_total) if st.tripped else st).evolve(cooldown_from=now)
        if refine:
            assert attempt is not None and base is not None  # narrowed above, lost in the bool
            needed = _grown(attempt, action.retry_growth)
            st = st.evolve(
                refine_left=action.refinements,
                refine_since=since,
                refine_labels=base,
                refine_needed=needed,
                attempt_labels=attempt,
                new_labels=None if labels_total is None else max(0, labels_total - base),
            )
            message = (
                f"run {status} with {attempt} labels {_since_text(since)}: refining, the next "
                f"run at {needed} labels ({action.refinements} allowed){cooldown} for new trips"
            )
        else:
            message = f"run {status}: episode over{cooldown}"
    elif not st.tripped or st.action_due:
        pass  # cleared during the run, or already due again: nothing to add
    elif status == "cancelled":
        st = st.evolve(action_due=True, last_suppression=None)
        message = "run cancelled: due again"
    elif status in RETRY_ON_GROWTH and st.attempt_labels is not None:
        used = st.attempt_labels
        needed = _grown(used, action.retry_growth)
        st = st.evolve(action_due=True, labels_needed=needed, last_suppression=None)
        message = (
            f"run {status} with {used} labels {_since_text(st.episode_since)}: next attempt "
            f"at {needed}"
        )
    decisions = []
    if message is not None:
        decisions.append(
            Decision(
                policy=policy.name,
                kind=DecisionKind.OUTCOME,
                ts=now,
                action=policy.action.type,
                message=message,
            )
        )
    return decisions, PolicyStates({**state.by_policy, policy.name: st})


def _since_text(since: datetime | None) -> str:
    return f"since {since.isoformat()}" if since is not None else "in the store"


def _minutes(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 60:.0f} min"


def _unknown_message(seen: list[Observation]) -> str:
    reasons = sorted({f"{o.signal}: {o.unknown_reason}" for o in seen if o.holds is None})
    return "insufficient data (" + "; ".join(reasons) + ")" if reasons else "insufficient data"
