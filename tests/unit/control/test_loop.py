"""The control loop against a real store and a real APScheduler; time is passed in."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adaptd.control.loop import CHECK_JOB, ControlLoop, Hooks
from adaptd.control.settings import SchedulerSettings
from adaptd.metrics import Metrics
from adaptd.policy.engine import Decision, EvaluationContext
from adaptd.policy.schema import Policy
from adaptd.signals import Signal
from adaptd.storage import repository
from tests.unit.policy.helpers import CATALOG, T0, sig

AUC = "drift.embedding.auc"
WAIT_S = 10.0


def policy(name: str = "p", **fields: Any) -> Policy:
    data = {"name": name, "trip": {"signal": AUC, "gt": 0.7}, "action": "retrain", **fields}
    return Policy.model_validate(data, context={"known": CATALOG})


class World:
    """The callables the daemon would inject, recording what the loop asked of them."""

    def __init__(self) -> None:
        self.value: float | None = 0.5
        self.retrains: list[Decision] = []
        self.alerts: list[Decision] = []
        self.rollbacks: list[Decision] = []
        self.stored: list[Signal] = []
        self.exported: list[Signal] = []
        self.check_raises: Exception | None = None
        self.alert_raises: Exception | None = None
        self.checked = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.retrain_started = threading.Event()
        #: the store's running total of labels (None: not counted) and what a run brings
        self.labels: int | None = None
        self.retrain_status: str | None = None
        #: seconds the store takes to count labels (the outcome reads the count first)
        self.count_delay = 0.0

    def context(self) -> EvaluationContext:
        time.sleep(self.count_delay)
        return EvaluationContext(adapter="a1", labels_total=self.labels)

    def check(self, now: datetime) -> list[Signal]:
        self.checked.set()
        if self.check_raises is not None:
            raise self.check_raises
        return [sig(AUC, self.value, ts=now)]

    def retrain(self, decision: Decision) -> object:
        self.retrains.append(decision)
        self.retrain_started.set()
        assert self.release.wait(WAIT_S)
        return SimpleNamespace(status=self.retrain_status) if self.retrain_status else None

    def alert(self, decision: Decision) -> None:
        if self.alert_raises is not None:
            raise self.alert_raises
        self.alerts.append(decision)

    def hooks(self, clock: Any = None) -> Hooks:
        return Hooks(
            check=self.check,
            retrain=self.retrain,
            rollback=self.rollbacks.append,
            alert=self.alert,
            store_signals=self.stored.extend,
            export_signals=self.exported.extend,
            context=self.context,
            **({"clock": clock} if clock else {}),
        )


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def make_loop(sqlite_engine, registry, world) -> Iterator[Any]:
    loops: list[ControlLoop] = []
    metrics = Metrics(registry)  # one per process, as in the daemon

    def make(
        policies: Sequence[Policy], settings: SchedulerSettings | None = None, **kw: Any
    ) -> ControlLoop:
        loop = ControlLoop(
            engine=sqlite_engine,
            metrics=metrics,
            settings=settings or SchedulerSettings(),
            policies=policies,
            hooks=world.hooks(**kw),
        )
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.shutdown()


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_a_check_trips_stores_events_state_and_retrains(make_loop, world, sqlite_engine, registry):
    loop = make_loop([policy()])
    assert loop.run_check_once(T0).decisions == []
    world.value = 0.9
    outcome = loop.run_check_once(T0 + timedelta(minutes=5))
    assert [d.kind.value for d in outcome.decisions] == ["trip", "action"]
    assert [d.policy for d in world.retrains] == ["p"]
    assert len(world.stored) == 2
    assert world.exported == world.stored
    events = repository.list_events(sqlite_engine)
    assert [(e.kind, e.source) for e in events] == [("trip", "policy/p"), ("action", "policy/p")]
    stored = repository.load_policy_states(sqlite_engine)
    assert stored["p"]["tripped"] is True
    assert sample(registry, "adaptd_policy_trips_total", policy="p", action="retrain") == 1
    assert sample(registry, "adaptd_policy_actions_total", policy="p", action="retrain") == 1
    assert sample(registry, "adaptd_policy_state", policy="p", state="tripped") == 1
    assert sample(registry, "adaptd_policy_state", policy="p", state="idle") == 0
    assert sample(registry, "adaptd_monitor_checks_total", result="ok") == 2


def test_a_restart_remembers_a_pending_trip_and_does_not_fire_twice(make_loop, world, registry):
    p = policy(**{"for": 2})
    world.value = 0.9
    first = make_loop([p])
    first.run_check_once(T0)
    assert first.states.get("p").pending == 1
    first.shutdown()

    second = make_loop([p])  # a new daemon on the same store
    assert second.states.get("p").pending == 1
    outcome = second.run_check_once(T0 + timedelta(minutes=5))
    assert [d.kind.value for d in outcome.decisions] == ["trip", "action"]

    third = make_loop([p])
    assert third.run_check_once(T0 + timedelta(minutes=10)).decisions == []
    assert len(world.retrains) == 1


def test_insufficient_data_is_a_suppression_event_and_metric(make_loop, world, registry):
    world.value = None
    loop = make_loop([policy()])
    outcome = loop.run_check_once(T0)
    assert [(d.kind.value, d.reason and d.reason.value) for d in outcome.decisions] == [
        ("suppressed", "insufficient_data")
    ]
    assert (
        sample(registry, "adaptd_policy_suppressions_total", policy="p", reason="insufficient_data")
        == 1
    )


def test_a_failing_check_is_reported_not_raised(make_loop, world, sqlite_engine, registry):
    world.check_raises = RuntimeError("store gone")
    loop = make_loop([policy()])
    outcome = loop.run_check_once(T0)
    assert outcome.error == "RuntimeError: store gone"
    assert [e.kind for e in repository.list_events(sqlite_engine)] == ["check_failed"]
    assert sample(registry, "adaptd_monitor_checks_total", result="error") == 1
    assert loop.status()["last_check"]["error"] == "RuntimeError: store gone"


def test_a_failing_alert_hook_is_an_event(make_loop, world, sqlite_engine, registry):
    world.alert_raises = ConnectionError("webhook down")
    world.value = 0.9
    loop = make_loop([policy(action="alert")])
    loop.run_check_once(T0)
    kinds = [e.kind for e in repository.list_events(sqlite_engine)]
    assert kinds == ["trip", "action", "action_failed"]
    assert sample(registry, "adaptd_policy_action_failures_total", action="alert") == 1


def test_rollback_and_alert_reach_their_hooks(make_loop, world):
    world.value = 0.9
    loop = make_loop([policy("a", action="alert"), policy("r", action="rollback")])
    loop.run_check_once(T0)
    assert [d.policy for d in world.alerts] == ["a"]
    assert [d.policy for d in world.rollbacks] == ["r"]


def test_reload_with_errors_keeps_the_previous_policies(make_loop, world, registry):
    loop = make_loop([policy("old")])
    assert not loop.reload(SchedulerSettings(), [policy("new")], ["p.yaml:3: trip: bad"])
    assert [p.name for p in loop.policies] == ["old"]
    status = loop.status()["reload"]
    assert status["ok"] is False
    assert status["errors"] == ["p.yaml:3: trip: bad"]

    assert loop.reload(SchedulerSettings(), [policy("new")])
    assert [p.name for p in loop.policies] == ["new"]
    assert loop.status()["reload"]["ok"] is True
    assert sample(registry, "adaptd_policy_state", policy="new", state="idle") == 1
    assert sample(registry, "adaptd_policy_state", policy="old", state="idle") is None


def wait_until(predicate: Any) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        threading.Event().wait(0.01)


def test_retrain_is_single_flight_and_coalesces(make_loop, world, sqlite_engine, registry):
    world.release.clear()
    world.value = 0.9
    loop = make_loop([policy("a"), policy("b", trip={"signal": AUC, "gt": 0.95})])
    loop.start()
    loop.run_check_once(T0)  # a trips and starts a retrain that blocks
    assert world.retrain_started.wait(WAIT_S)
    assert loop.retrain_running
    assert loop.status()["retrain"]["policy"] == "a"
    world.value = 0.99
    outcome = loop.run_check_once(T0 + timedelta(minutes=5))  # b trips while a's run is going
    assert [e.kind for e in outcome.events] == ["trip", "action", "coalesced"]
    assert sample(registry, "adaptd_policy_suppressions_total", policy="b", reason="coalesced") == 1
    assert len(world.retrains) == 1
    world.release.set()
    wait_until(lambda: not loop.retrain_running)
    assert loop.status()["retrain"]["coalesced"] == 1


def test_the_scheduler_runs_checks_and_lists_its_jobs(make_loop, world):
    loop = make_loop([policy()], SchedulerSettings(check_interval_s=3600, check_on_start=True))
    loop.start()
    assert world.checked.wait(WAIT_S)
    wait_until(lambda: loop.status()["last_check"] is not None)
    (job,) = loop.status()["scheduler"]["jobs"]
    assert job["id"] == CHECK_JOB
    assert job["trigger"] == "interval[1:00:00]"
    assert job["next_run_time"] is not None
    assert loop.status()["scheduler"]["running"] is True


def test_reload_reschedules_the_check(make_loop, world):
    loop = make_loop([policy()], SchedulerSettings(check_interval_s=3600))
    loop.start()
    loop.reload(SchedulerSettings(check_cron="*/10 * * * *"), [policy()])
    (job,) = loop.status()["scheduler"]["jobs"]
    assert job["trigger"].startswith("cron[")
    assert "minute='*/10'" in job["trigger"]
    assert loop.status()["scheduler"]["schedule"] == "cron '*/10 * * * *' (UTC)"


def test_a_missed_check_is_coalesced_and_counted(make_loop, world, registry):
    loop = make_loop([policy()], SchedulerSettings(check_interval_s=3600, misfire_grace_s=1))
    loop.start()
    scheduler = loop._scheduler
    assert scheduler is not None
    # As after a suspended machine: the run is half an hour late, far beyond the grace time
    # (the next regular run, half an hour ahead, is not due yet).
    scheduler.modify_job(CHECK_JOB, next_run_time=datetime.now(UTC) - timedelta(minutes=30))
    wait_until(lambda: sample(registry, "adaptd_monitor_checks_total", result="missed") == 1)
    assert not world.checked.is_set()
    (job,) = loop.status()["scheduler"]["jobs"]
    assert datetime.fromisoformat(job["next_run_time"]) > datetime.now(UTC)


def test_invalid_schedule_settings_are_refused():
    with pytest.raises(ValueError, match="invalid crontab expression"):
        SchedulerSettings(check_cron="every tuesday")
    with pytest.raises(ValueError, match="unknown time zone"):
        SchedulerSettings(timezone="Mars/Olympus")


def waiting_policy(name: str = "p", **fields: Any) -> Policy:
    action = {"type": "retrain", "min_new_labels": 100, "retry_growth": 2.0}
    return policy(name, action=action, **fields)


def test_a_retrain_waits_for_labels_in_status_metric_and_events(
    make_loop, world, sqlite_engine, registry
):
    world.labels = 0
    loop = make_loop([waiting_policy()])
    loop.start()
    loop.run_check_once(T0)  # calm: the labels of the episode come after this check
    loop.run_check_once(T0 + timedelta(seconds=30))  # calm too (a margin of one check)
    world.value, world.labels = 0.9, 30
    outcome = loop.run_check_once(T0 + timedelta(minutes=1))
    assert [e.kind for e in outcome.events] == ["trip", "suppressed"]
    assert outcome.events[1].details == {
        "policy": "p",
        "action": "retrain",
        "reason": "awaiting_labels",
        "signals": {AUC: {"value": 0.9, "gt": 0.7}},
    }
    assert sample(registry, "adaptd_policy_labels_awaited", policy="p") == 70
    (status,) = loop.status()["policies"]
    assert status["labels"] == {
        "since": T0.isoformat(),
        "new": 30,
        "needed": 100,
        "awaited": 70,
        "waiting_since": (T0 + timedelta(minutes=1)).isoformat(),
    }
    assert loop.status()["summary"] == [
        f"p: tripped, waiting for 70 more labels (30 of 100 since {T0.isoformat()})"
    ]
    assert world.retrains == []

    world.labels = 100
    outcome = loop.run_check_once(T0 + timedelta(minutes=2))
    assert [e.kind for e in outcome.events] == ["wait_ended", "action"]
    assert sample(registry, "adaptd_policy_labels_awaited", policy="p") == 0
    wait_until(lambda: not loop.retrain_running)
    (decision,) = world.retrains
    assert (decision.since, decision.new_labels) == (T0, 100)
    stored = repository.load_policy_states(sqlite_engine)["p"]
    assert stored["labels_needed"] == 100 and stored["waiting_since"] is None


def test_the_slot_frees_only_once_the_outcome_is_recorded(make_loop, world, sqlite_engine):
    # A slow store between the run's end and its outcome: whoever waits for the retrain to
    # finish must still find the outcome's event and the policy's next state, not the run
    # half over (the e2e policy tests read them straight after `retrain_running` clears).
    world.labels, world.retrain_status, world.count_delay = 0, "rejected", 0.5
    loop = make_loop([waiting_policy(cooldown="12h")])
    loop.start()
    loop.run_check_once(T0)
    world.value, world.labels = 0.9, 120
    loop.run_check_once(T0 + timedelta(minutes=1))
    wait_until(lambda: len(world.retrains) == 1)
    wait_until(lambda: not loop.retrain_running)
    assert repository.list_events(sqlite_engine)[-1].kind == "outcome"
    assert loop.states.get("p").action_due


def test_a_rejected_run_waits_for_more_labels_then_retries(make_loop, world, sqlite_engine):
    world.labels, world.retrain_status = 0, "rejected"
    loop = make_loop([waiting_policy(cooldown="12h")])
    loop.start()
    loop.run_check_once(T0)
    world.value, world.labels = 0.9, 120
    loop.run_check_once(T0 + timedelta(minutes=1))
    wait_until(lambda: len(world.retrains) == 1 and not loop.retrain_running)
    # the outcome changes the state, then its event is stored: wait for the last
    wait_until(lambda: repository.list_events(sqlite_engine)[-1].kind == "outcome")
    assert loop.states.get("p").action_due
    assert loop.states.get("p").labels_needed == 240  # 120 used, retry_growth 2
    outcome = loop.run_check_once(T0 + timedelta(minutes=2))
    assert [e.kind for e in outcome.events] == ["suppressed"]
    world.labels = 240
    outcome = loop.run_check_once(T0 + timedelta(minutes=3))
    assert [e.kind for e in outcome.events] == ["wait_ended", "action"]
    wait_until(lambda: len(world.retrains) == 2)
    assert world.retrains[1].new_labels == 240


def test_a_promotion_ends_the_episode(make_loop, world, registry):
    world.labels, world.retrain_status = 0, "promoted"
    loop = make_loop([waiting_policy(cooldown="6h")])
    loop.start()
    loop.run_check_once(T0)
    world.value, world.labels = 0.9, 100
    loop.run_check_once(T0 + timedelta(minutes=1))
    # the state changes first, then the gauges are exported: wait for the last
    wait_until(lambda: sample(registry, "adaptd_policy_state", policy="p", state="idle") == 1)
    assert loop.states.get("p").phase == "idle"
    assert loop.states.get("p").cooldown_from is not None


def test_a_coalesced_retrain_waits_for_growth(make_loop, world, sqlite_engine):
    world.release.clear()
    world.value, world.labels = 0.9, 150
    loop = make_loop([waiting_policy("a"), waiting_policy("b", trip={"signal": AUC, "gt": 0.95})])
    loop.start()
    loop.run_check_once(T0)
    assert world.retrain_started.wait(WAIT_S)
    # b trips on its second check: no calm check before its last, so every label counts
    world.value, world.labels = 0.99, 300
    try:
        outcome = loop.run_check_once(T0 + timedelta(minutes=1))
    finally:
        world.release.set()
    assert [e.kind for e in outcome.events] == ["trip", "action", "coalesced", "outcome"]
    assert loop.states.get("b").labels_needed == 600  # 300 used, retry_growth 2
    wait_until(lambda: not loop.retrain_running)
