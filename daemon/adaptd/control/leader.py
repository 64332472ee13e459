"""One controller, elected: the control loop runs only in the instance that holds the store's
leader lock (:mod:`adaptd.storage.locks`), so however many daemons run with role ``all`` or
``control`` against one store, monitors, policies, retraining, promotion and probation are
decided once.

Every eligible daemon starts a :class:`Leadership`. It tries the lock once during startup (a lone
daemon controls from its first second, as before elections existed), then every
``scheduler.leader_poll_s``: a standby takes the lock when it frees up and starts the control
loop; the leader renews it and, when a renewal fails, stops its control loop at once and becomes
a standby again. On PostgreSQL the lock also says when its session ends between renewals (the
server restarted: every advisory lock is gone), and the leader stops then, not at its next
renewal, so that it never leads alongside a standby that took the lock after the restart; it
competes for the lock again like any standby.

Takeover after a leader dies is bounded by how the lock frees up: at once for a killed process on
PostgreSQL (its session closes), ~11 s for a vanished host, at most
``scheduler.leader_lease_s`` on SQLite; plus one poll.

The control part (``control/wiring.py``) knows nothing of this: it receives a context whose
status, reload and shutdown hooks are scoped to one term as leader, so a deposed control loop
leaves no status section, reload hook or teardown behind, and the next term starts fresh.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from adaptd.config import Settings

# Imported here, not when elected: a standby must not spend its takeover importing the monitors
# and the retraining part (5-7 s measured on a busy 2-core box).
from adaptd.control.wiring import DaemonControl, start_control
from adaptd.storage.engine import log_store_failure
from adaptd.storage.locks import LEADER_LOCK, StoreLock, describe, holder_id, store_lock

if TYPE_CHECKING:
    from adaptd.control.context import ControlContext

logger = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Leadership:
    """Holds (or waits for) the leader lock and runs the control loop while it holds it."""

    def __init__(
        self,
        ctx: ControlContext,
        lock: StoreLock,
        *,
        poll_s: float,
        renew_s: float,
        clock: Callable[[], datetime] = _utcnow,
        start: Callable[[ControlContext], DaemonControl] = start_control,
    ) -> None:
        self._ctx, self._lock = ctx, lock
        self.poll_s, self.renew_s = poll_s, renew_s
        self._clock, self._start = clock, start
        self.control: DaemonControl | None = None
        self._since: datetime | None = None
        self._terms = 0
        self._stop = threading.Event()
        # set to run a round now: by stop(), or by the lock when it sees itself lost
        self._wake = threading.Event()
        # step() and stop() never interleave: a control loop is never started after the stop.
        self._mutex = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="adaptd-leader", daemon=True)
        # what the current term's control loop registered
        self._providers: dict[str, Callable[[], dict[str, Any]]] = {}
        self._reloads: list[Callable[[Settings], None]] = []
        self._teardowns: list[Callable[[], object]] = []
        self._sections: set[str] = set()

    @property
    def leading(self) -> bool:
        return self.control is not None

    def start(self) -> None:
        self._ctx.register_status("leader", self.status)
        # Present from the start, so a standby's status says why it shows no control loop.
        self._register_section("control")
        self._ctx.register_reload(self._reload)
        self._ctx.on_shutdown(self.stop)
        self._lock.on_lost = self._wake.set
        self.step()
        self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.renew_s if self.leading else self.poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.step()
            except Exception as e:
                log_store_failure(logger, "leader election", e)

    def step(self) -> None:
        """One round: take the lock if free, or check that it is still held."""
        with self._mutex:
            if self._stop.is_set():
                return
            now = self._clock()
            if self.control is None:
                try:
                    got = self._lock.acquire(now)
                except Exception as e:  # the store is down: stay a standby, try again
                    logger.warning("leader lock: cannot ask the store: %s", e)
                    return
                if got:
                    self._elect(now)
            elif not self._lock.renew(now):
                self._ctx.metrics.leader.lost.inc()
                self._depose("the leader lock was lost")

    def _elect(self, now: datetime) -> None:
        logger.info("elected control leader (%s); starting the control loop", self._lock.holder)
        term = dataclasses.replace(
            self._ctx,
            register_status=self._register_status,
            register_reload=self._reloads.append,
            on_shutdown=self._teardowns.append,
        )
        try:
            self.control = self._start(term)
        except Exception:
            logger.exception("the control loop did not start; giving the leader lock up")
            self._end_term()
            self._lock.release()
            return
        self._since = now
        self._terms += 1
        self._ctx.metrics.leader.leader.set(1)
        self._ctx.metrics.leader.terms.inc()

    def _depose(self, why: str) -> None:
        # Stop acting first: another instance may already hold the lock.
        logger.error("no longer the control leader (%s): stopping the control loop", why)
        self._ctx.metrics.leader.leader.set(0)
        self._end_term()

    def _end_term(self) -> None:
        self.control, self._since = None, None
        teardowns, self._teardowns = self._teardowns, []
        self._providers.clear()
        self._reloads.clear()
        for teardown in reversed(teardowns):
            try:
                teardown()
            except Exception:
                logger.exception("stopping the control loop")

    def stop(self) -> None:
        """Stop the control loop (if leading) and give the lock up, for the next leader."""
        self._stop.set()
        self._wake.set()
        with self._mutex:
            if self.control is not None:
                self._ctx.metrics.leader.leader.set(0)
                self._end_term()
            self._lock.release()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    # ------------------------------------------------------------------ per-term hooks

    def _register_status(self, name: str, provider: Callable[[], dict[str, Any]]) -> None:
        self._providers[name] = provider
        self._register_section(name)

    def _register_section(self, name: str) -> None:
        if name not in self._sections:
            self._sections.add(name)
            self._ctx.register_status(name, partial(self._section, name))

    def _section(self, name: str) -> dict[str, Any]:
        provider = self._providers.get(name)
        if provider is None:
            return {"standby": True, "reason": "this instance is not the control leader"}
        return provider()

    def _reload(self, settings: Settings) -> None:
        for hook in list(self._reloads):
            hook(settings)

    def status(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "leader": self.leading,
            "holder": self._lock.holder,
            "since": self._since.isoformat() if self._since else None,
            "lock": self._lock.kind,
            "terms": self._terms,
        }
        try:
            current = describe(self._ctx.engine, LEADER_LOCK)
        except Exception as e:
            doc["current_leader"] = None
            doc["error"] = f"{type(e).__name__}: {e}"
        else:
            doc["current_leader"] = current.holder if current is not None else None
        return doc


def elect(
    ctx: ControlContext, *, start: Callable[[ControlContext], DaemonControl] = start_control
) -> Leadership:
    """Start the election for this daemon (roles ``all`` and ``control``); ``start`` runs at
    each won term and returns the running control loop."""
    scheduler = ctx.settings().scheduler
    lock = store_lock(ctx.engine, LEADER_LOCK, holder=holder_id(), ttl_s=scheduler.leader_lease_s)
    leadership = Leadership(
        ctx,
        lock,
        poll_s=scheduler.leader_poll_s,
        renew_s=min(scheduler.leader_poll_s, scheduler.leader_lease_s / 3),
        start=start,
    )
    leadership.start()
    return leadership
