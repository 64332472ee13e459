"""A running control loop: the real scheduler fires checks, the shipped default policy trips on a
shift, and the retrain job starts, once, in its own thread; reload keeps bad files out."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry

from adaptd.control.loop import ControlLoop, Hooks
from adaptd.control.settings import SchedulerSettings
from adaptd.metrics import Metrics
from adaptd.policy.engine import Decision
from adaptd.policy.loading import load_policies
from adaptd.signals import Signal, Status
from adaptd.storage import repository
from tests.unit.policy.helpers import CATALOG, POLICIES_DIR

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WAIT_S = 20.0


def test_default_policy_trips_in_a_running_loop_and_starts_one_retrain(sqlite_engine, tmp_path):
    ticks = itertools.count()
    lock = threading.Lock()

    def clock() -> datetime:  # every check is 15 simulated minutes after the previous one
        with lock:
            return T0 + next(ticks) * timedelta(minutes=15)

    checks: list[datetime] = []
    retrain_started = threading.Event()
    retrains: list[Decision] = []

    def check(now: datetime) -> list[Signal]:
        checks.append(now)
        auc = 0.92 if len(checks) > 3 else 0.5  # the shift arrives at the 4th check
        return [
            Signal(
                name="drift.embedding.auc",
                ts=now,
                status=Status.DRIFT if auc > 0.6 else Status.OK,
                value=auc,
                n_reference=2000,
                n_current=2000,
            )
        ]

    def retrain(decision: Decision) -> None:
        retrains.append(decision)
        retrain_started.set()

    policies, errors = load_policies([POLICIES_DIR / "default.yaml"], CATALOG)
    assert errors == []
    registry = CollectorRegistry()
    loop = ControlLoop(
        engine=sqlite_engine,
        metrics=Metrics(registry),
        settings=SchedulerSettings(check_interval_s=0.05, check_on_start=True),
        policies=policies,
        hooks=Hooks(check=check, retrain=retrain, rollback=print, alert=print, clock=clock),
    )
    loop.start()
    try:
        assert retrain_started.wait(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while len(checks) < 12:  # keep the loop running well past the trip
            assert time.monotonic() < deadline
            threading.Event().wait(0.02)
    finally:
        loop.shutdown()

    assert len(retrains) == 1
    assert retrains[0].policy == "retrain-on-shift"
    assert retrains[0].overrides == {}
    events = repository.list_events(sqlite_engine)
    assert [e.kind for e in events if e.source == "policy/retrain-on-shift"] == ["trip", "action"]
    # The alert policy's signal is never produced here: one suppression, not one per check.
    alert = [e for e in events if e.source == "policy/estimated-accuracy-alert"]
    assert [(e.kind, (e.details or {}).get("reason")) for e in alert] == [
        ("suppressed", "insufficient_data")
    ]
    assert (
        registry.get_sample_value(
            "adaptd_policy_trips_total", {"policy": "retrain-on-shift", "action": "retrain"}
        )
        == 1
    )
    assert registry.get_sample_value("adaptd_checks_total", {"result": "ok"}) >= 12

    # A restarted daemon reads the tripped state back and does not retrain again.
    restarted = ControlLoop(
        engine=sqlite_engine,
        metrics=Metrics(CollectorRegistry()),
        settings=SchedulerSettings(),
        policies=policies,
        hooks=Hooks(check=check, retrain=retrain, rollback=print, alert=print, clock=clock),
    )
    restarted.run_check_once(clock())
    assert len(retrains) == 1
    assert restarted.status()["policies"][0]["phase"] == "tripped"


def test_reload_from_files_keeps_the_previous_policies_on_a_bad_file(sqlite_engine, tmp_path):
    good = POLICIES_DIR / "alert-only.yaml"
    bad = tmp_path / "bad.yaml"
    bad.write_text("policies:\n  - name: x\n    trip: {signal: nope, gt: 1}\n    action: alert\n")
    registry = CollectorRegistry()
    policies, _ = load_policies([good], CATALOG)
    loop = ControlLoop(
        engine=sqlite_engine,
        metrics=Metrics(registry),
        settings=SchedulerSettings(),
        policies=policies,
        hooks=Hooks(check=lambda now: [], retrain=print, rollback=print, alert=print),
    )
    new, errors = load_policies([good, bad], CATALOG)
    assert not loop.reload(SchedulerSettings(), new, errors)
    assert [p.name for p in loop.policies] == ["drift-alert", "accuracy-alert"]
    (message,) = loop.status()["reload"]["errors"]
    assert message.startswith(f"{bad}:3: policies.0.trip.signal: unknown signal 'nope'")
    assert registry.get_sample_value("adaptd_config_last_reload_success") == 0
