"""The engine's state machine, step by step, with time passed in."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from adaptd.policy.engine import (
    Decision,
    DecisionKind,
    EvaluationContext,
    Suppression,
    evaluate,
)
from adaptd.policy.schema import Policy
from adaptd.policy.state import PolicyState, PolicyStates
from adaptd.signals import Status
from tests.unit.policy.helpers import CATALOG, T0, sig

AUC = "drift.embedding.auc"
HOUR = timedelta(hours=1)


def policy(**fields: Any) -> Policy:
    data: dict[str, Any] = {
        "name": "p",
        "trip": {"signal": AUC, "gt": 0.7},
        "action": "retrain",
        **fields,
    }
    return Policy.model_validate(data, context={"known": CATALOG})


def run(
    p: Policy, values: list[float | None], *, step: timedelta = HOUR, **kw: Any
) -> tuple[list[list[Decision]], PolicyStates]:
    state = PolicyStates()
    out = []
    for i, value in enumerate(values):
        decisions, state = evaluate([p], [sig(AUC, value)], state, T0 + i * step, **kw)
        out.append(decisions)
    return out, state


def kinds(steps: list[list[Decision]]) -> list[list[str]]:
    return [[d.kind.value for d in ds] for ds in steps]


def test_trips_and_acts_once_then_clears():
    steps, state = run(policy(), [0.5, 0.8, 0.9, 0.5, 0.8])
    assert kinds(steps) == [[], ["trip", "action"], [], ["clear"], ["trip", "action"]]
    action = steps[1][1]
    assert action.action == "retrain"
    assert action.observations[AUC] == {"value": 0.8, "gt": 0.7}
    assert state.get("p").tripped


def test_for_needs_consecutive_checks():
    steps, _ = run(policy(**{"for": 3}), [0.8, 0.8, 0.5, 0.8, 0.8, 0.8])
    assert kinds(steps) == [[], [], [], [], [], ["trip", "action"]]


def test_n_of_m():
    steps, _ = run(policy(n_of_m={"n": 2, "m": 3}), [0.8, 0.5, 0.5, 0.8, 0.5, 0.8])
    assert kinds(steps) == [[], [], [], [], [], ["trip", "action"]]


def test_pending_state_is_visible():
    _, state = run(policy(**{"for": 3}), [0.8, 0.8])
    assert state.get("p").phase == "pending"
    assert state.get("p").pending == 2


def test_separate_clear_condition_and_clear_for():
    p = policy(clear={"signal": AUC, "lt": 0.6}, clear_for=2)
    steps, _ = run(p, [0.8, 0.65, 0.55, 0.65, 0.55, 0.55])
    assert kinds(steps) == [["trip", "action"], [], [], [], [], ["clear"]]


def test_insufficient_data_never_trips_and_is_reported_once():
    steps, state = run(policy(), [None, None, None, 0.8])
    assert kinds(steps) == [["suppressed"], [], [], ["trip", "action"]]
    assert steps[0][0].reason is Suppression.INSUFFICIENT_DATA
    assert "drift.embedding.auc: insufficient_data" in steps[0][0].message


def test_error_status_and_small_windows_never_trip():
    p = policy(min_samples=500)
    state = PolicyStates()
    for signal in [
        sig(AUC, None, status=Status.ERROR),
        sig(AUC, 0.99, n=499),
        sig(AUC, float("nan"), status=Status.DRIFT),
    ]:
        decisions, state = evaluate([p], [signal], state, T0)
        assert all(d.kind is not DecisionKind.TRIP for d in decisions)
    assert not state.get("p").tripped


def test_missing_signal_is_unknown():
    decisions, _ = evaluate([policy()], [], PolicyStates(), T0)
    assert [d.reason for d in decisions] == [Suppression.INSUFFICIENT_DATA]
    assert "missing" in decisions[0].message


def test_cooldown_holds_the_action_back_until_it_passes():
    p = policy(cooldown="3h", action="alert")
    # trip+act, clear, trip again within the cooldown: suppressed, then acts when it passes.
    steps, _ = run(p, [0.8, 0.5, 0.8, 0.8, 0.8, 0.8])
    assert kinds(steps) == [
        ["trip", "action"],
        ["clear"],
        ["trip", "suppressed"],
        ["action"],
        [],
        [],
    ]
    assert steps[2][1].reason is Suppression.COOLDOWN


def test_budget_counts_actions_in_any_24_hours():
    p = policy(max_per_day=2)
    values = [0.8, 0.5] * 4
    steps, _ = run(p, values, step=timedelta(hours=4))
    actions = [i for i, ds in enumerate(steps) if any(d.kind is DecisionKind.ACTION for d in ds)]
    # 0 h and 8 h act; 16 h would be the third in 24 h; at 24 h the first has left the window.
    assert actions == [0, 2, 6]
    assert [d.kind for d in steps[4]] == [DecisionKind.TRIP, DecisionKind.SUPPRESSED]
    assert steps[4][1].reason is Suppression.BUDGET


def test_repeat_after_acts_again_while_still_tripped():
    p = policy(repeat_after="2h")
    steps, _ = run(p, [0.8, 0.8, 0.8, 0.8, 0.8])
    assert kinds(steps) == [["trip", "action"], [], ["action"], [], ["action"]]


def test_without_repeat_a_persisting_trip_acts_once():
    steps, _ = run(policy(), [0.8] * 10)
    assert sum(d.kind is DecisionKind.ACTION for ds in steps for d in ds) == 1


def test_relative_to_reference():
    p = policy(trip={"signal": AUC, "gt": {"relative_to": "reference", "delta": 0.1}})
    low, _ = evaluate([p], [sig(AUC, 0.65, reference=0.6)], PolicyStates(), T0)
    high, _ = evaluate([p], [sig(AUC, 0.75, reference=0.6)], PolicyStates(), T0)
    none, _ = evaluate([p], [sig(AUC, 0.75)], PolicyStates(), T0)
    assert low == []
    assert [d.kind for d in high] == [DecisionKind.TRIP, DecisionKind.ACTION]
    assert high[0].observations[AUC]["gt"] == 0.7
    assert "no reference value" in none[0].message


def test_relative_to_validation_ratio():
    p = policy(
        trip={"signal": "performance.accuracy", "lt": {"relative_to": "validation", "ratio": 0.9}}
    )
    ctx = EvaluationContext(adapter="abc", validation={"performance.accuracy": 0.9})
    ok, _ = evaluate([p], [sig("performance.accuracy", 0.85)], PolicyStates(), T0, ctx)
    bad, _ = evaluate([p], [sig("performance.accuracy", 0.80)], PolicyStates(), T0, ctx)
    assert ok == []
    assert bad[0].kind is DecisionKind.TRIP


def test_status_drift_is_required_when_named():
    p = policy(trip={"signal": AUC, "gt": 0.7, "status": "drift"})
    ok, _ = evaluate([p], [sig(AUC, 0.8, status=Status.OK)], PolicyStates(), T0)
    drift, _ = evaluate([p], [sig(AUC, 0.8, status=Status.DRIFT)], PolicyStates(), T0)
    assert ok == []
    assert drift[0].kind is DecisionKind.TRIP


def test_any_trips_on_one_known_branch_all_waits_for_every_branch():
    both = [{"signal": AUC, "gt": 0.7}, {"signal": "bias.gender.dp_diff", "gt": 0.1}]
    signals = [sig(AUC, 0.8), sig("bias.gender.dp_diff", None)]
    any_d, _ = evaluate([policy(trip={"any": both})], signals, PolicyStates(), T0)
    all_d, _ = evaluate([policy(trip={"all": both})], signals, PolicyStates(), T0)
    assert any_d[0].kind is DecisionKind.TRIP
    assert [d.reason for d in all_d] == [Suppression.INSUFFICIENT_DATA]
    false_branch = [sig(AUC, 0.5), sig("bias.gender.dp_diff", None)]
    assert evaluate([policy(trip={"all": both})], false_branch, PolicyStates(), T0)[0] == []


def test_any_clears_on_the_branches_it_can_see():
    # Tripped on drift while accuracy labels never arrive: drift going away must clear it.
    either = [{"signal": AUC, "gt": 0.7}, {"signal": "performance.accuracy", "lt": 0.8}]
    p = policy(trip={"any": either})
    state = PolicyStates()
    made = []
    for i, auc in enumerate([0.9, 0.5]):
        signals = [sig(AUC, auc), sig("performance.accuracy", None)]
        decisions, state = evaluate([p], signals, state, T0 + i * HOUR)
        made.append([d.kind.value for d in decisions])
    assert made == [["trip", "action"], ["clear"]]


def test_retrain_overrides_travel_with_the_action():
    p = policy(action={"type": "retrain", "overrides": {"replay_ratio": 0.4}})
    decisions, _ = evaluate([p], [sig(AUC, 0.9)], PolicyStates(), T0)
    assert decisions[1].overrides == {"replay_ratio": 0.4}
    event = decisions[1].to_event()
    assert event.kind == "action"
    assert event.source == "policy/p"
    assert event.details is not None
    assert event.details["overrides"] == {"replay_ratio": 0.4}


def test_disabled_policies_are_skipped_and_keep_their_state():
    kept = PolicyStates({"p": PolicyState(history=(True,))})
    decisions, state = evaluate([policy(enabled=False)], [sig(AUC, 0.9)], kept, T0)
    assert decisions == []
    assert state == kept


def test_state_survives_a_restart_through_json():
    p = policy(**{"for": 3}, cooldown="6h")
    _, state = run(p, [0.8, 0.8])
    restored = PolicyStates.from_json(state.to_json())
    assert restored == state
    decisions, state = evaluate([p], [sig(AUC, 0.8)], restored, T0 + 2 * HOUR)
    assert [d.kind for d in decisions] == [DecisionKind.TRIP, DecisionKind.ACTION]
    # After the action a restart must not fire again.
    again = PolicyStates.from_json(state.to_json())
    decisions, _ = evaluate([p], [sig(AUC, 0.8)], again, T0 + 3 * HOUR)
    assert decisions == []


def test_an_unreadable_stored_state_starts_afresh():
    states = PolicyStates.from_json({"p": {"version": 99}, "q": PolicyState().to_json()})
    assert set(states.by_policy) == {"q"}
