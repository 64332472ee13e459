"""Liveness that means something: is each worker thread alive and making progress?

A worker marks the stretches where it holds work (``with heartbeat.working(): ...``); waiting for
work, or backing off while the store is down, is not being stuck. A part is stuck when its thread
has died, or when one unit of work has been running for longer than ``stall_s``. The service asks
every part at each watchdog tick and for ``/healthz``; :class:`Watchdog` sends systemd's
``WATCHDOG=1`` only while none is stuck, so systemd restarts a daemon whose batcher hangs in a
forward pass or whose log writer thread died, instead of it answering ``/healthz`` with ok.

Timing: pings go out every ``WatchdogSec/4`` and a part counts as stuck after ``WatchdogSec/2``
of one unit of work, so the last ping is sent at most ``WatchdogSec/2`` after a hang began
(measured 0.5-1.0 s with WatchdogSec=2 s) and systemd acts one ``WatchdogSec`` after that ping.
Half an interval is also what one forward pass or one store write may take before it counts as
a hang: 30 s with the shipped unit's ``WatchdogSec=60s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from adaptd import sdnotify

logger = logging.getLogger(__name__)

#: without systemd's watchdog, how long one unit of work may run before /healthz calls it stuck
DEFAULT_STALL_S = 60.0


class Heartbeat:
    """Progress of one worker thread, as seen from other threads (reads need no lock)."""

    def __init__(self, part: str, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.part = part
        self.thread: threading.Thread | None = None
        self._clock = clock
        self._busy_since: float | None = None

    @contextmanager
    def working(self) -> Iterator[None]:
        self._busy_since = self._clock()
        try:
            yield
        finally:
            self._busy_since = None

    def stuck(self, now: float, stall_s: float) -> str | None:
        """Why this part is stuck at monotonic time ``now``, or None while it is healthy."""
        thread = self.thread
        if thread is None or not thread.is_alive():
            return f"{self.part}: its thread is not running"
        since = self._busy_since
        if since is not None and now - since > stall_s:
            return (
                f"{self.part}: one unit of work has run for {now - since:.1f}s (limit {stall_s:g}s)"
            )
        return None


def stall_limit(watchdog_s: float | None) -> float:
    """How long one unit of work may run before its part counts as stuck."""
    return DEFAULT_STALL_S if watchdog_s is None else min(DEFAULT_STALL_S, watchdog_s / 2)


class Watchdog:
    """A thread that pings systemd's watchdog while ``probe`` finds nothing stuck."""

    def __init__(
        self,
        probe: Callable[[], str | None],
        *,
        watchdog_s: float,
        notify: Callable[[str], bool] = sdnotify.notify,
    ) -> None:
        self._probe = probe
        self.interval_s = watchdog_s / 4
        self._notify = notify
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reported: str | None = None

    def tick(self) -> bool:
        """Probe once; ping when nothing is stuck. Returns whether it pinged."""
        try:
            reason = self._probe()
        except Exception as e:  # a probe that raises must not look like a healthy daemon
            reason = f"liveness probe failed: {type(e).__name__}: {e}"
        if reason is None:
            if self._reported is not None:
                logger.warning("liveness restored; watchdog pings resume")
                self._reported = None
            return self._notify("WATCHDOG=1")
        # Reasons start with the part's name; the seconds in them change at every tick.
        part = reason.partition(":")[0]
        if part != self._reported:
            logger.error("stuck, withholding the systemd watchdog ping: %s", reason)
            self._notify(f"STATUS=stuck: {reason}")
            self._reported = part
        return False

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="adaptd-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.interval_s)
