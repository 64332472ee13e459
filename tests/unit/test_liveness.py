"""Heartbeats, the stall limit and the watchdog's decision to ping, with a fake clock."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from adaptd import sdnotify
from adaptd.liveness import DEFAULT_STALL_S, Heartbeat, Watchdog, stall_limit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def running_thread() -> Iterator[threading.Thread]:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join()


def test_a_heartbeat_is_stuck_only_past_the_limit_inside_one_unit_of_work(
    running_thread: threading.Thread,
) -> None:
    clock = Clock()
    beat = Heartbeat("batcher", clock=clock)
    beat.thread = running_thread
    assert beat.stuck(clock.now + 3600, 1.0) is None  # idle for an hour: waiting is not stuck
    with beat.working():
        assert beat.stuck(clock.now + 1.0, 1.0) is None
        reason = beat.stuck(clock.now + 1.5, 1.0)
        assert reason == "batcher: one unit of work has run for 1.5s (limit 1s)"
    assert beat.stuck(clock.now + 1.5, 1.0) is None


def test_a_dead_or_missing_thread_is_stuck_at_once() -> None:
    beat = Heartbeat("log writer")
    assert beat.stuck(0.0, 1.0) == "log writer: its thread is not running"
    beat.thread = threading.Thread(target=lambda: None)
    beat.thread.start()
    beat.thread.join()
    assert beat.stuck(0.0, 1.0) == "log writer: its thread is not running"


def test_the_stall_limit_is_half_the_watchdog_interval_capped_by_the_default() -> None:
    assert stall_limit(None) == DEFAULT_STALL_S
    assert stall_limit(2.0) == 1.0
    assert stall_limit(10 * DEFAULT_STALL_S) == DEFAULT_STALL_S


def test_watchdog_seconds_reads_systemds_variables() -> None:
    me = str(os.getpid())
    assert sdnotify.watchdog_seconds({}) is None
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": me}) == 2.0
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "soon"}) is None
    assert sdnotify.watchdog_seconds({"WATCHDOG_USEC": "0"}) is None


def test_the_watchdog_pings_only_while_nothing_is_stuck() -> None:
    sent: list[str] = []
    reason: list[str | None] = [None]

    def notify(message: str) -> bool:
        sent.append(message)
        return True

    def probe() -> str | None:
        return reason[0]

    watchdog = Watchdog(probe, watchdog_s=2.0, notify=notify)
    assert watchdog.interval_s == 0.5
    assert watchdog.tick() is True
    reason[0] = "batcher: one unit of work has run for 9.0s (limit 1s)"
    assert watchdog.tick() is False
    reason[0] = "batcher: one unit of work has run for 9.5s (limit 1s)"
    assert watchdog.tick() is False  # the status is sent once per stuck part
    reason[0] = None
    assert watchdog.tick() is True
    assert sent == [
        "WATCHDOG=1",
        "STATUS=stuck: batcher: one unit of work has run for 9.0s (limit 1s)",
        "WATCHDOG=1",
    ]


def test_a_probe_that_raises_withholds_the_ping() -> None:
    sent: list[str] = []

    def probe() -> str | None:
        raise RuntimeError("boom")

    watchdog = Watchdog(probe, watchdog_s=2.0, notify=lambda m: sent.append(m) or True)
    assert watchdog.tick() is False
    assert sent == ["STATUS=stuck: liveness probe failed: RuntimeError: boom"]
