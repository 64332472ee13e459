"""A policy's `alert` action raises adaptd_policy_alert_active, which the shipped rule
AdaptdPolicyAlert turns into a Prometheus alert; the policy's hysteresis lowers it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from adaptd.control.loop import ControlLoop
from adaptd.control.settings import SchedulerSettings
from adaptd.metrics import Metrics
from tests.unit.control.test_loop import World, policy
from tests.unit.policy.helpers import T0

NAME = "adaptd_policy_alert_active"
DRIFT = {"name": "drift-alert", "description": "Input drift", "cooldown": "6h"}


def alert_policy(severity: str = "critical", **fields: Any) -> Any:
    data = {**DRIFT, **fields}
    return policy(data.pop("name"), action={"type": "alert", "severity": severity}, **data)


@pytest.fixture
def setup(sqlite_engine: Any) -> Iterator[tuple[ControlLoop, World, CollectorRegistry]]:
    registry, world = CollectorRegistry(), World()
    loop = ControlLoop(
        engine=sqlite_engine,
        metrics=Metrics(registry),
        settings=SchedulerSettings(),
        policies=[alert_policy(), policy("retrainer")],
        hooks=world.hooks(),
    )
    yield loop, world, registry
    loop.shutdown()


def series(registry: CollectorRegistry) -> dict[tuple[str, str, str], float]:
    return {
        (s.labels["policy"], s.labels["severity"], s.labels["description"]): s.value
        for metric in registry.collect()
        if metric.name == NAME
        for s in metric.samples
    }


def test_the_alert_series_is_raised_by_a_trip_and_lowered_by_the_clear(setup: Any) -> None:
    loop, world, registry = setup
    key = ("drift-alert", "critical", "Input drift")
    assert series(registry) == {key: 0}  # present from the start; retrain policies have none

    world.value = 0.9
    loop.run_check_once(T0)
    assert [d.policy for d in world.alerts] == ["drift-alert"]
    assert series(registry) == {key: 1}

    world.value = 0.5
    loop.run_check_once(T0 + timedelta(minutes=5))
    assert series(registry) == {key: 0}

    # Tripped again inside the cooldown: the alert action is held back, so nothing is raised.
    world.value = 0.9
    loop.run_check_once(T0 + timedelta(minutes=10))
    assert loop.status()["policies"][0]["phase"] == "tripped"
    assert len(world.alerts) == 1
    assert series(registry) == {key: 0}


def test_a_reload_replaces_or_removes_the_series(setup: Any) -> None:
    loop, _, registry = setup
    loop.reload(SchedulerSettings(), [alert_policy("info", description="")])
    assert series(registry) == {("drift-alert", "info", "policy drift-alert tripped"): 0}
    loop.reload(SchedulerSettings(), [policy("drift-alert")])  # now a retrain policy
    assert series(registry) == {}
    loop.reload(SchedulerSettings(), [alert_policy()])
    loop.reload(SchedulerSettings(), [policy("other")])  # removed altogether
    assert series(registry) == {}
