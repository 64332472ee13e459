"""A retrain that waits for evidence: labels since the shift, retries as they grow, cooldown only
after a promotion. Pure: the label count and the time are passed in."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adaptd.policy.engine import (
    Decision,
    DecisionKind,
    EvaluationContext,
    Suppression,
    evaluate,
    record_retrain,
)
from adaptd.policy.schema import Policy, RetrainAction
from adaptd.policy.state import PolicyStates
from tests.unit.policy.helpers import CATALOG, T0, sig

AUC = "drift.embedding.auc"
MIN = timedelta(minutes=1)


def policy(
    min_new_labels: int = 200, retry_growth: float = 1.5, refinements: int = 0, **fields: Any
) -> Policy:
    data: dict[str, Any] = {
        "name": "p",
        "trip": {"signal": AUC, "gt": 0.7},
        "action": {
            "type": "retrain",
            "min_new_labels": min_new_labels,
            "retry_growth": retry_growth,
            "refinements": refinements,
        },
        **fields,
    }
    return Policy.model_validate(data, context={"known": CATALOG})


class Run:
    """Checks one minute apart, with the store's running label total passed in."""

    def __init__(self, p: Policy, *, min_labels: int = 0) -> None:
        self.p, self.min_labels = p, min_labels
        self.state = PolicyStates()
        self.now = T0
        self.total: int | None = 0

    def check(self, auc: float | None, total: int | None) -> list[Decision]:
        self.now += MIN
        self.total = total
        context = EvaluationContext(labels_total=total, min_labels=self.min_labels)
        decisions, self.state = evaluate(
            [self.p], [sig(AUC, auc, ts=self.now)], self.state, self.now, context
        )
        return decisions

    def outcome(self, decision: Decision, status: str) -> list[Decision]:
        self.now += MIN
        made, self.state = record_retrain(
            [self.p], self.state, decision, status, self.now, self.total
        )
        return made

    @property
    def st(self) -> Any:
        return self.state.get("p")


def kinds(decisions: list[Decision]) -> list[str]:
    return [d.kind.value if d.reason is None else d.reason.value for d in decisions]


def test_a_retrain_waits_for_labels_from_before_the_shift_showed():
    run = Run(policy())
    run.check(0.5, 100)  # calm: the shift comes after this check ...
    calm = run.now
    run.check(0.5, 100)  # ... or after this one, which may have seen its start
    made = run.check(0.9, 150)
    assert kinds(made) == ["trip", "awaiting_labels"]
    assert (
        made[1].message
        == f"waiting for 150 more labelled examples (50 of 200 since {calm.isoformat()})"
    )
    assert run.st.labels_awaited == 150
    assert run.st.waiting_since == run.now
    assert kinds(run.check(0.9, 250)) == []  # still waiting: reported once, not per check
    assert run.st.labels_awaited == 50
    made = run.check(0.9, 300)
    assert kinds(made) == ["wait_ended", "action"]
    assert made[0].message.startswith(f"wait for labels ended: 200 of 200 since {calm.isoformat()}")
    action = made[1]
    assert action.since == calm
    assert action.new_labels == 200
    assert action.to_event().details == {
        "policy": "p",
        "action": "retrain",
        "since": calm.isoformat(),
        "new_labels": 200,
        "signals": {AUC: {"value": 0.9, "gt": 0.7}},
    }
    assert run.st.labels_awaited == 0
    assert not run.st.action_due


def test_labels_count_from_the_calm_check_before_the_last_one():
    # The last calm check's window may already hold the start of the shift (it did not hold
    # yet because too little of the window had moved): one check of margin.
    run = Run(policy(min_new_labels=100))
    run.check(0.5, 0)
    before = run.now
    run.check(0.5, 40)
    run.check(0.6, 90)  # calm, but moving
    made = run.check(0.9, 150)
    assert kinds(made) == ["trip", "action"]
    assert (made[1].since, made[1].new_labels) == (before + MIN, 110)


def test_a_pending_check_does_not_move_where_the_labels_start():
    run = Run(policy(n_of_m={"n": 2, "m": 3}, min_new_labels=10))
    run.check(0.5, 0)
    calm = run.now
    run.check(0.5, 0)
    run.check(0.9, 40)  # held once: pending, the episode may start here
    made = run.check(0.9, 80)
    assert kinds(made) == ["trip", "action"]
    assert made[1].since == calm
    assert made[1].new_labels == 80


def test_with_enough_labels_at_the_trip_it_acts_at_once():
    run = Run(policy())
    run.check(0.5, 0)
    assert kinds(run.check(0.9, 500)) == ["trip", "action"]


def test_the_first_checks_ever_count_every_stored_label():
    # A fresh start: nothing says when the shift came, it may be before every stored label.
    run = Run(policy())
    made = run.check(0.9, 250)
    assert kinds(made) == ["trip", "action"]
    assert (made[1].since, made[1].new_labels) == (None, 250)
    run = Run(policy())
    run.check(0.5, 100)  # one calm check: its window may hold the start of the shift
    made = run.check(0.9, 250)
    assert (made[1].since, made[1].new_labels) == (None, 250)


def test_min_labels_of_the_job_is_a_floor():
    run = Run(policy(min_new_labels=0), min_labels=50)
    run.check(0.5, 0)
    made = run.check(0.9, 20)
    assert kinds(made) == ["trip", "awaiting_labels"]
    assert run.st.labels_needed == 50
    assert kinds(run.check(0.9, 50)) == ["wait_ended", "action"]


def test_without_a_label_count_it_acts_on_the_trip():
    run = Run(policy())
    run.check(0.5, None)
    made = run.check(0.9, None)
    assert kinds(made) == ["trip", "action"]
    assert made[1].new_labels is None


def test_a_rejection_retries_at_grown_labels_without_the_cooldown():
    run = Run(policy(cooldown="12h"))
    run.check(0.5, 0)
    calm = run.now
    run.check(0.5, 0)
    action = run.check(0.9, 200)[1]
    assert kinds(run.check(0.9, 220)) == []  # the run is going; nothing is due
    made = run.outcome(action, "rejected")
    assert kinds(made) == ["outcome"]
    assert made[0].message == (
        f"run rejected with 200 labels since {calm.isoformat()}: next attempt at 300"
    )
    assert run.st.labels_needed == 300
    assert kinds(run.check(0.9, 260)) == ["awaiting_labels"]
    assert run.st.labels_awaited == 40
    made = run.check(0.9, 310)
    assert kinds(made) == ["wait_ended", "action"]
    assert made[1].new_labels == 310  # trains on everything since the shift
    assert run.now - action.ts < timedelta(hours=1)


def test_a_failed_or_coalesced_run_also_waits_for_growth():
    for status in ("failed", "coalesced"):
        run = Run(policy(retry_growth=2.0))
        run.check(0.5, 0)
        action = run.check(0.9, 250)[1]
        run.outcome(action, status)
        assert run.st.labels_needed == 500, status


def test_growth_always_asks_for_at_least_one_more_label():
    run = Run(policy(min_new_labels=1, retry_growth=1.01))
    run.check(0.5, 0)
    action = run.check(0.9, 1)[1]
    run.outcome(action, "rejected")
    assert run.st.labels_needed == 2


def test_the_daily_budget_bounds_the_retries():
    run = Run(policy(min_new_labels=100, max_per_day=2))
    run.check(0.5, 0)
    first = run.check(0.9, 100)[1]
    run.outcome(first, "rejected")
    second = run.check(0.9, 150)
    assert kinds(second) == ["action"]
    run.outcome(second[0], "rejected")
    assert run.st.labels_needed == 225
    made = run.check(0.9, 400)
    assert kinds(made) == ["budget"]
    assert made[0].message == "budget spent: 2 of 2 actions in 24 hours"


def test_a_promotion_ends_the_episode_and_starts_the_cooldown():
    run = Run(policy(min_new_labels=100, cooldown="6h"))
    run.check(0.5, 0)
    action = run.check(0.9, 100)[1]
    made = run.outcome(action, "promoted")
    assert kinds(made) == ["outcome"]
    assert "episode over, cooldown until" in made[0].message
    assert run.st.phase == "idle"
    assert run.st.cooldown_from == run.now
    promoted = run.now
    # The labels of a next episode start after the promotion, and it waits for the cooldown.
    assert kinds(run.check(0.9, 150)) == ["trip", "awaiting_labels"]
    assert run.st.episode_since == promoted
    made = run.check(0.9, 260)
    assert kinds(made) == ["wait_ended", "cooldown"]
    assert made[1].message == f"cooldown until {(promoted + timedelta(hours=6)).isoformat()}"


def test_awaiting_approval_ends_the_episode_like_a_promotion():
    run = Run(policy(min_new_labels=10))
    run.check(0.5, 0)
    action = run.check(0.9, 10)[1]
    run.outcome(action, "awaiting_approval")
    assert run.st.phase == "idle"


def test_a_cancelled_run_is_due_again_at_once():
    run = Run(policy(min_new_labels=10))
    run.check(0.5, 0)
    action = run.check(0.9, 10)[1]
    run.outcome(action, "cancelled")
    assert kinds(run.check(0.9, 10)) == ["action"]


def test_an_outcome_after_the_policy_cleared_changes_only_the_cooldown():
    run = Run(policy(min_new_labels=10))
    run.check(0.5, 0)
    action = run.check(0.9, 10)[1]
    run.check(0.5, 10)  # cleared while the run went on
    assert run.outcome(action, "rejected") == []
    assert run.st.phase == "idle"
    run.outcome(action, "promoted")
    assert run.st.cooldown_from == run.now


def test_clearing_while_waiting_ends_the_wait():
    run = Run(policy())
    run.check(0.5, 0)
    run.check(0.9, 10)
    made = run.check(0.5, 20)
    assert kinds(made) == ["wait_ended", "clear"]
    assert made[0].message == "wait for labels ended: cleared"
    assert run.st.labels_awaited == 0
    assert run.st.episode_since is None
    assert run.st.baseline_at == run.now


def test_alert_cooldown_still_starts_at_the_action():
    p = Policy.model_validate(
        {"name": "p", "trip": {"signal": AUC, "gt": 0.7}, "action": "alert", "cooldown": "1h"},
        context={"known": CATALOG},
    )
    run = Run(p)
    assert kinds(run.check(0.9, 0)) == ["trip", "action"]
    run.check(0.5, 0)
    assert kinds(run.check(0.9, 0)) == ["trip", "cooldown"]


def test_the_waiting_state_survives_a_restart():
    run = Run(policy())
    run.check(0.5, 0)
    run.check(0.9, 50)
    stored = PolicyStates.from_json(json.loads(json.dumps(run.state.to_json())))
    assert stored == run.state
    run.state = stored
    assert kinds(run.check(0.9, 100)) == []  # the wait was reported before the restart
    assert kinds(run.check(0.9, 200)) == ["wait_ended", "action"]


# --------------------------------------------------------------------------- properties

OUTCOMES = st.sampled_from(["promoted", "rejected", "failed", "cancelled", "coalesced", None])
steps = st.lists(
    st.tuples(
        st.one_of(st.none(), st.floats(0.0, 1.0)),  # the AUC of a check
        st.integers(0, 120),  # labels that arrived since the check before
        st.integers(1, 240),  # minutes since the check before
        OUTCOMES,  # what a retrain started at this check brought (None: still unknown)
    ),
    min_size=1,
    max_size=50,
)
knobs = st.tuples(
    st.integers(0, 300),  # min_new_labels
    st.sampled_from([1.2, 1.5, 2.0]),  # retry_growth
    st.integers(0, 12),  # cooldown hours
    st.integers(1, 4),  # max_per_day
    st.integers(0, 60),  # retraining.min_labels
)


def simulate(
    knob: tuple[int, float, int, int, int], script: list[Any], restart: bool = False
) -> list[tuple[Decision, int]]:
    """The decisions (each with the label total when made) of one scripted run."""
    min_new, growth, cooldown_h, budget, min_labels = knob
    p = policy(min_new, growth, cooldown=f"{cooldown_h}h", max_per_day=budget)
    state, now, total = PolicyStates(), T0, 0
    out: list[tuple[Decision, int]] = []
    for auc, arrived, gap, outcome in script:
        now += timedelta(minutes=gap)
        total += arrived
        ctx = EvaluationContext(labels_total=total, min_labels=min_labels)
        made, state = evaluate([p], [sig(AUC, auc, ts=now)], state, now, ctx)
        out.extend((d, total) for d in made)
        for d in made:
            if d.kind is DecisionKind.ACTION and outcome is not None:
                now += timedelta(seconds=30)
                more, state = record_retrain([p], state, d, outcome, now, total)
                out.extend((m, total) for m in more)
        if restart:
            state = PolicyStates.from_json(json.loads(json.dumps(state.to_json())))
    return out


@settings(max_examples=150, deadline=None)
@given(knobs, steps)
def test_deterministic_and_a_restart_changes_nothing(knob, script):
    assert simulate(knob, script) == simulate(knob, script)
    assert simulate(knob, script, restart=True) == simulate(knob, script)


@settings(max_examples=200, deadline=None)
@given(knobs, steps)
def test_a_retrain_never_starts_on_fewer_labels_than_it_waits_for(knob, script):
    min_new, growth, _, _, min_labels = knob
    used: int | None = None  # new labels of the episode's last attempt that was rejected
    for d, _total in simulate(knob, script):
        if d.kind in (DecisionKind.TRIP, DecisionKind.CLEAR):
            used = None
        elif d.kind is DecisionKind.ACTION:
            assert d.new_labels is not None
            assert d.new_labels >= max(min_new, min_labels)
            if used is not None:
                assert d.new_labels >= max(math.ceil(used * growth), used + 1)
            used = d.new_labels
        elif d.kind is DecisionKind.OUTCOME and "episode over" in d.message:
            used = None
        elif d.kind is DecisionKind.OUTCOME and "cancelled" in d.message:
            used = None  # retried with the same target


@settings(max_examples=200, deadline=None)
@given(knobs, steps)
def test_budget_always_holds_and_cooldown_follows_promotions_only(knob, script):
    _, _, cooldown_h, budget, _ = knob
    made = [d for d, _ in simulate(knob, script)]
    actions = [d.ts for d in made if d.kind is DecisionKind.ACTION]
    for i, start in enumerate(actions):
        assert len([t for t in actions[i:] if t - start < timedelta(hours=24)]) <= budget
    promotions = [
        d.ts for d in made if d.kind is DecisionKind.OUTCOME and "episode over" in d.message
    ]
    for promoted in promotions:
        later = [t for t in actions if t > promoted]
        if later:
            assert later[0] - promoted >= timedelta(hours=cooldown_h)


@settings(max_examples=100, deadline=None)
@given(knobs, steps)
def test_waits_are_reported_once_and_always_end(knob, script):
    waiting = False
    for d, _ in simulate(knob, script):
        if d.reason is Suppression.AWAITING_LABELS:
            assert not waiting
            waiting = True
        elif d.kind is DecisionKind.WAIT_ENDED:
            assert waiting
            waiting = False
        elif d.kind in (DecisionKind.ACTION, DecisionKind.CLEAR, DecisionKind.TRIP):
            assert not waiting


def test_policy_fields_have_their_defaults():
    p = policy()
    assert isinstance(p.action, RetrainAction)
    bare = Policy.model_validate(
        {"name": "p", "trip": {"signal": AUC, "gt": 0.7}, "action": "retrain"},
        context={"known": CATALOG},
    )
    assert isinstance(bare.action, RetrainAction)
    assert (bare.action.min_new_labels, bare.action.retry_growth) == (0, 1.5)
