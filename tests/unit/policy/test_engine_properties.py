"""Invariants of the engine over random signal sequences (Hypothesis)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from adaptd.policy.engine import Decision, DecisionKind, evaluate
from adaptd.policy.schema import Policy
from adaptd.policy.state import PolicyStates
from tests.unit.policy.helpers import CATALOG, T0, sig

AUC = "drift.embedding.auc"

values = st.lists(st.one_of(st.none(), st.floats(0.0, 1.0)), min_size=1, max_size=60)
gaps = st.lists(st.integers(1, 360), min_size=60, max_size=60)  # minutes between checks
hysteresis = st.one_of(
    st.builds(lambda n: {"for": n}, st.integers(1, 4)),
    st.builds(
        lambda n, extra: {"n_of_m": {"n": n, "m": n + extra}}, st.integers(1, 3), st.integers(0, 3)
    ),
)


def make(threshold: float, extra: dict[str, Any]) -> Policy:
    data = {"name": "p", "trip": {"signal": AUC, "gt": threshold}, "action": "retrain", **extra}
    return Policy.model_validate(data, context={"known": CATALOG})


def make_alert(threshold: float, extra: dict[str, Any]) -> Policy:
    data = {"name": "p", "trip": {"signal": AUC, "gt": threshold}, "action": "alert", **extra}
    return Policy.model_validate(data, context={"known": CATALOG})


def replay(p: Policy, seq: list[float | None], minutes: list[int]) -> list[Decision]:
    state = PolicyStates()
    now = T0
    out: list[Decision] = []
    for value, gap in zip(seq, minutes, strict=False):
        now += timedelta(minutes=gap)
        decisions, state = evaluate([p], [sig(AUC, value, ts=now)], state, now)
        out.extend(decisions)
    return out


@settings(max_examples=150, deadline=None)
@given(values, gaps, hysteresis, st.floats(0.0, 0.99))
def test_deterministic_for_a_fixed_now(seq, minutes, hyst, threshold):
    p = make(threshold, hyst)
    assert replay(p, seq, minutes) == replay(p, seq, minutes)


@settings(max_examples=200, deadline=None)
@given(values, gaps, hysteresis, st.floats(0.0, 0.99), st.floats(0.0, 0.5))
def test_a_looser_threshold_trips_no_later(seq, minutes, hyst, threshold, loosen):
    strict = replay(make(threshold, hyst), seq, minutes)
    loose = replay(make(max(0.0, threshold - loosen), hyst), seq, minutes)
    first_strict = next((d.ts for d in strict if d.kind is DecisionKind.TRIP), None)
    first_loose = next((d.ts for d in loose if d.kind is DecisionKind.TRIP), None)
    if first_strict is not None:
        assert first_loose is not None
        assert first_loose <= first_strict


@settings(max_examples=200, deadline=None)
@given(
    values,
    gaps,
    hysteresis,
    st.integers(0, 12),
    st.integers(1, 3),
    st.one_of(st.none(), st.integers(1, 8)),
)
def test_cooldown_and_budget_are_never_exceeded(seq, minutes, hyst, cooldown_h, budget, repeat_h):
    extra = {**hyst, "cooldown": f"{cooldown_h}h", "max_per_day": budget}
    if repeat_h is not None:
        extra["repeat_after"] = f"{repeat_h}h"
    # A low threshold makes trips frequent, so the limits are what stops the actions.
    actions = [
        d.ts for d in replay(make_alert(0.3, extra), seq, minutes) if d.kind is DecisionKind.ACTION
    ]
    for earlier, later in zip(actions, actions[1:], strict=False):
        assert later - earlier >= timedelta(hours=cooldown_h)
    for i, start in enumerate(actions):
        in_day = [t for t in actions[i:] if t - start < timedelta(hours=24)]
        assert len(in_day) <= budget


@settings(max_examples=100, deadline=None)
@given(values, gaps, hysteresis)
def test_an_action_always_follows_a_trip_and_precedes_the_clear(seq, minutes, hyst):
    tripped = False
    for d in replay(make(0.5, hyst), seq, minutes):
        if d.kind is DecisionKind.TRIP:
            assert not tripped
            tripped = True
        elif d.kind is DecisionKind.CLEAR:
            assert tripped
            tripped = False
        elif d.kind is DecisionKind.ACTION:
            assert tripped


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), max_size=40), hysteresis)
def test_insufficient_data_never_trips(seq, hyst):
    state = PolicyStates()
    p = make(0.0, hyst)
    for i, _ in enumerate(seq):
        decisions, state = evaluate([p], [sig(AUC, None)], state, T0 + timedelta(hours=i))
        assert all(d.kind is DecisionKind.SUPPRESSED for d in decisions)


@settings(max_examples=150, deadline=None)
@given(values, gaps, hysteresis, st.integers(0, 6), st.one_of(st.none(), st.integers(1, 3)))
def test_a_restart_at_any_check_changes_nothing(seq, minutes, hyst, cooldown_h, repeat_h):
    """State stored as JSON and read back after every check (a restart each time) gives the
    same decisions as one uninterrupted run: nothing forgotten, nothing fired twice."""
    extra = {**hyst, "cooldown": f"{cooldown_h}h", "max_per_day": 2}
    if repeat_h is not None:
        extra["repeat_after"] = f"{repeat_h}h"
    p = make(0.5, extra)
    state = PolicyStates()
    now = T0
    restarted: list[Decision] = []
    for value, gap in zip(seq, minutes, strict=False):
        now += timedelta(minutes=gap)
        decisions, state = evaluate([p], [sig(AUC, value, ts=now)], state, now)
        restarted.extend(decisions)
        state = PolicyStates.from_json(json.loads(json.dumps(state.to_json())))
    assert restarted == replay(p, seq, minutes)
