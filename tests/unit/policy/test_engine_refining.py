"""Refinements: after a promotion the episode's labels keep growing, and the policy retrains on
all of them again as they grow by retry_growth, up to ``refinements`` times. Pure."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from adaptd.policy.state import PolicyStates
from tests.unit.policy.test_engine_waiting import Run, kinds, policy


def promoted_run(refinements: int = 2, **fields: Any) -> tuple[Run, Any]:
    """Tripped at 100 labels, the first run promoted; returns the run and the shift's time."""
    run = Run(policy(min_new_labels=100, refinements=refinements, **fields))
    run.check(0.5, 0)
    calm = run.now
    run.check(0.5, 0)  # the shift comes after the calm check before this one
    action = run.check(0.9, 100)[1]
    assert action.new_labels == 100
    run.outcome(action, "promoted")
    return run, calm


def test_a_promotion_starts_refining_on_the_same_episode():
    run, calm = promoted_run()
    assert run.st.phase == "refining"
    assert (run.st.refine_since, run.st.refine_needed, run.st.refine_left) == (calm, 150, 2)
    assert kinds(run.check(0.5, 149)) == []
    assert run.st.new_labels == 149
    made = run.check(0.5, 160)
    assert kinds(made) == ["action"]
    refine = made[0]
    # Trains on every label since the shift, not only those after the promotion.
    assert (refine.refinement, refine.since, refine.new_labels) == (True, calm, 160)
    assert refine.message.startswith(f"retrain (refinement, 160 labels since {calm.isoformat()}")
    assert refine.to_event().details["refinement"] is True
    assert run.st.refine_needed is None  # running: no second one while it runs
    assert kinds(run.check(0.5, 400)) == []


def test_each_outcome_sets_the_next_refinement_until_none_is_left():
    run, _ = promoted_run(refinements=2)
    first = run.check(0.5, 150)[0]
    made = run.outcome(first, "rejected")
    assert "next refinement at 225" in made[0].message
    assert run.st.cooldown_from != run.now  # a rejection does not start the cooldown
    second = run.check(0.5, 230)[0]
    assert second.refinement
    made = run.outcome(second, "promoted")
    assert "no refinement left" in made[0].message
    assert run.st.phase == "idle"
    assert run.st.cooldown_from == run.now
    assert kinds(run.check(0.5, 10_000)) == []


def test_refinements_ignore_the_cooldown_but_not_the_budget():
    run, _ = promoted_run(refinements=3, cooldown="6h", max_per_day=2)
    made = run.check(0.5, 150)  # within the cooldown the promotion started
    assert kinds(made) == ["action"]
    run.outcome(made[0], "promoted")
    made = run.check(0.5, 225)
    assert kinds(made) == ["budget"]
    assert run.st.refine_left == 2  # held back, not spent
    run.now += timedelta(hours=24)
    assert kinds(run.check(0.5, 225)) == ["action"]


def test_a_new_trip_ends_the_refinements():
    run, _ = promoted_run(cooldown="6h")
    running = run.check(0.5, 150)[0]
    made = run.check(0.9, 160)
    assert kinds(made) == ["trip", "awaiting_labels"]
    assert not run.st.refining
    # The refinement's outcome still starts the cooldown, and changes nothing else.
    assert run.outcome(running, "promoted") == []
    assert run.st.phase == "tripped" and not run.st.refining
    assert run.st.cooldown_from == run.now


def test_a_cancelled_refinement_is_due_again_at_once():
    run, _ = promoted_run(refinements=1)
    made = run.check(0.5, 150)
    run.outcome(made[0], "cancelled")
    assert run.st.refine_left == 1
    assert kinds(run.check(0.5, 150)) == ["action"]


def test_without_refinements_a_promotion_ends_the_episode():
    run, _ = promoted_run(refinements=0)
    assert run.st.phase == "idle" and not run.st.refining
    assert kinds(run.check(0.5, 10_000)) == []


def test_a_refinement_awaiting_approval_ends_the_refinements():
    run, _ = promoted_run(refinements=2)
    made = run.outcome(run.check(0.5, 150)[0], "awaiting_approval")
    assert "episode over" in made[0].message
    assert not run.st.refining and run.st.cooldown_from == run.now


def test_awaiting_approval_does_not_refine():
    run = Run(policy(min_new_labels=10, refinements=2))
    run.check(0.5, 0)
    action = run.check(0.9, 10)[1]
    run.outcome(action, "awaiting_approval")
    assert not run.st.refining


def test_the_refining_state_survives_a_restart():
    run, _ = promoted_run()
    stored = PolicyStates.from_json(json.loads(json.dumps(run.state.to_json())))
    assert stored == run.state
    run.state = stored
    assert kinds(run.check(0.5, 150)) == ["action"]
