"""The control role's election on a real SQLite store: one leader runs the control loop, a
standby takes over when the lock frees up, and a leader that lost the lock stops at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from adaptd.config import Settings
from adaptd.control.context import ControlContext
from adaptd.control.leader import Leadership
from adaptd.metrics import Metrics
from adaptd.storage.locks import AdvisoryLock, LeaseLock, StoreLock
from tests.pg import PostgresServer, restartable_postgres

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Daemon:
    """What one daemon hands its control part: status sections, reload hooks, teardowns."""

    engine: Engine
    now: list[datetime]
    metrics: Metrics = field(default_factory=lambda: Metrics(CollectorRegistry()))
    sections: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    reloads: list[Callable[[Settings], None]] = field(default_factory=list)
    teardowns: list[Callable[[], object]] = field(default_factory=list)
    started: list[FakeControl] = field(default_factory=list)

    def context(self) -> ControlContext:
        def register_status(name: str, provider: Callable[[], dict[str, Any]]) -> None:
            assert name not in self.sections, f"section {name} registered twice"
            self.sections[name] = provider

        return ControlContext(
            engine=self.engine,
            metrics=self.metrics,
            settings=Settings,
            host=None,
            register_status=register_status,
            register_reload=self.reloads.append,
            on_shutdown=self.teardowns.append,
            request_swap=lambda: None,
        )

    def start(self, ctx: ControlContext) -> Any:
        control = FakeControl(ctx)
        self.started.append(control)
        return control

    def leadership(
        self, holder: str, ttl_s: float = 15.0, lock: StoreLock | None = None
    ) -> Leadership:
        lock = lock or LeaseLock(self.engine, "control-leader", holder=holder, ttl_s=ttl_s)
        leadership = Leadership(
            self.context(),
            lock,
            poll_s=3600,
            renew_s=3600,
            clock=lambda: self.now[0],
            start=self.start,
        )
        leadership.start()
        return leadership

    def leader_gauge(self) -> float | None:
        return self.metrics.registry.get_sample_value("adaptd_control_leader")


class FakeControl:
    """Registers what DaemonControl registers, and records when it is stopped."""

    def __init__(self, ctx: ControlContext) -> None:
        self.stopped = False
        self.reloaded: list[Settings] = []
        ctx.register_status("control", lambda: {"running": not self.stopped})
        ctx.register_reload(self.reloaded.append)
        ctx.on_shutdown(self.stop)

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def now() -> list[datetime]:
    return [T0]


def test_one_of_two_daemons_controls_and_the_other_takes_over_when_it_stops(
    sqlite_engine: Engine, now: list[datetime]
) -> None:
    a, b = Daemon(sqlite_engine, now), Daemon(sqlite_engine, now)
    first = a.leadership("host:1:a")
    second = b.leadership("host:2:b")
    try:
        assert first.leading and not second.leading
        assert len(a.started) == 1 and not b.started
        assert (a.leader_gauge(), b.leader_gauge()) == (1.0, 0.0)
        assert a.sections["leader"]()["leader"] is True
        assert b.sections["leader"]()["current_leader"] == "host:1:a"
        assert b.sections["control"]()["standby"] is True  # says why there is no loop

        # A reload reaches the running control loop only.
        a.reloads[0](Settings())
        assert len(a.started[0].reloaded) == 1

        # The leader stops (SIGTERM): control first, then the lock, for the standby.
        for teardown in reversed(a.teardowns):
            teardown()
        assert a.started[0].stopped and a.leader_gauge() == 0
        second.step()
        assert second.leading and len(b.started) == 1
        assert b.sections["control"]() == {"running": True}
        assert b.metrics.registry.get_sample_value("adaptd_control_leader_terms_total") == 1
    finally:
        first.stop()
        second.stop()


def test_a_leader_that_lost_its_lease_stops_its_control_loop_before_anything_else(
    sqlite_engine: Engine, now: list[datetime]
) -> None:
    a, b = Daemon(sqlite_engine, now), Daemon(sqlite_engine, now)
    first = a.leadership("host:1:a", ttl_s=10)
    second = b.leadership("host:2:b", ttl_s=10)
    try:
        assert first.leading
        # The leader stalls past its lease; the standby takes over...
        now[0] = T0 + timedelta(seconds=11)
        second.step()
        assert second.leading
        # ...and the old leader, at its next renewal, learns it and stops acting.
        first.step()
        assert not first.leading and a.started[0].stopped
        assert a.leader_gauge() == 0
        assert a.metrics.registry.get_sample_value("adaptd_control_leader_lost_total") == 1
        assert a.sections["control"]()["standby"] is True
        # It stays a standby while the new leader renews.
        now[0] = T0 + timedelta(seconds=15)
        second.step()
        first.step()
        assert not first.leading and len(a.started) == 1
    finally:
        first.stop()
        second.stop()


def test_a_control_loop_that_fails_to_start_gives_the_lock_up(
    sqlite_engine: Engine, now: list[datetime]
) -> None:
    a, b = Daemon(sqlite_engine, now), Daemon(sqlite_engine, now)

    def broken(ctx: ControlContext) -> Any:
        FakeControl(ctx)
        raise RuntimeError("policies unreadable")

    lock = LeaseLock(sqlite_engine, "control-leader", holder="host:1:a", ttl_s=15)
    first = Leadership(
        a.context(), lock, poll_s=3600, renew_s=3600, clock=lambda: now[0], start=broken
    )
    first.start()
    second = b.leadership("host:2:b")
    try:
        assert not first.leading
        assert second.leading
    finally:
        first.stop()
        second.stop()


restartable = pytest.fixture(name="restartable")(restartable_postgres)


@pytest.mark.postgres
def test_a_postgres_restart_deposes_the_leader_at_once_and_one_daemon_leads_after(
    restartable: PostgresServer, now: list[datetime]
) -> None:
    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    engine = make_engine(restartable.url)
    migrate.upgrade(engine)
    a, b = Daemon(engine, now), Daemon(engine, now)
    first = a.leadership("host:1:a", lock=AdvisoryLock(engine, "control-leader", holder="a"))
    second = b.leadership("host:2:b", lock=AdvisoryLock(engine, "control-leader", holder="b"))
    try:
        assert first.leading and not second.leading
        restartable.stop("fast")  # every session ends, every advisory lock with it
        # Renewals and polls are an hour apart here: only the lock's watcher can tell it.
        deadline = time.monotonic() + 10
        while first.leading and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not first.leading and a.started[0].stopped
        assert a.metrics.registry.get_sample_value("adaptd_control_leader_lost_total") == 1
        restartable.start()
        # Whoever asks first after the restart leads; the other stays a standby.
        second.step()
        first.step()
        assert second.leading and not first.leading
        assert len(a.started) == 1 and len(b.started) == 1
        # The old leader takes the lock again when it is free.
        second.stop()
        first.step()
        assert first.leading and len(a.started) == 2
    finally:
        first.stop()
        second.stop()
        engine.dispose()
