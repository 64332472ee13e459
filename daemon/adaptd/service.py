"""The composition root: wires the parts into one daemon and owns its lifecycle.

Modelled on gunicorn's arbiter and uvicorn's server: named phases (:meth:`Service.startup`,
:meth:`Service.main_loop`, :meth:`Service.shutdown`), an explicit run state whose illegal
transitions raise, teardown registered on an ``ExitStack`` as each resource comes up, and signal
handlers that only record the signal ("NO LOGGING, just queue the signal") for the main loop to
dispatch. uvicorn runs embedded in a thread, which keeps it from installing signal handlers: this
class owns SIGTERM, SIGINT and SIGHUP.

Startup order: config -> logging -> store (reachable, schema current) -> metrics -> model host ->
prediction log -> batcher -> swapper (active adapter, registry watcher) -> HTTP -> startup repair
(retraining.repair) -> control loop -> sd_notify READY. Shutdown first secures what was
accepted, then unwinds the rest: HTTP drains in-flight requests and the prediction log is
flushed, then the control loop stops (it may wait for a running check or retrain), the watcher,
the batcher, the log writer and the store close.
The whole stop runs against one deadline, ``server.stop_timeout_s``, which stays below the
systemd unit's ``TimeoutStopSec``: a SIGKILL from systemd would lose the buffered rows.
"""

from __future__ import annotations

import enum
import gc
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from adaptd import __version__, liveness, sdnotify
from adaptd.adapters.serving_port import StoreRegistry
from adaptd.config import Settings, load_settings
from adaptd.control.context import ControlContext
from adaptd.errors import AdaptdError, ConfigError, LockBusyError
from adaptd.logsetup import configure_logging
from adaptd.metrics import Metrics
from adaptd.modeling.base import resolve_base
from adaptd.privacy.guard import start_guard
from adaptd.privacy.logs import log_filter
from adaptd.role import Role
from adaptd.security import mask_secrets, use_private_umask
from adaptd.serving.batcher import Batcher
from adaptd.serving.host import ModelHost, freeze_startup_objects
from adaptd.serving.http import ServingContext, create_app
from adaptd.serving.logwriter import PredictionLog
from adaptd.serving.swapper import RetrySettings, Swapper
from adaptd.storage import repository as repo
from adaptd.storage.engine import open_store
from adaptd.storage.locks import retrain_lock
from adaptd.storage.notify import RegistryListener

if TYPE_CHECKING:
    from adaptd.control.leader import Leadership
    from adaptd.control.wiring import DaemonControl

logger = logging.getLogger(__name__)

NO_ADAPTER = (
    "no adapter is active: register one with `adaptd adapters import DIR` and activate it "
    "with `adaptd adapters promote VERSION`"
)
#: settings that a SIGHUP cannot change in a running daemon (they need a restart): the store and
#: the model are opened once, the socket is bound once. Every other key is read when used or
#: applied by :meth:`Service._apply_live`, so a reload that changes one of these is refused whole.
RESTART_KEYS = ("state_dir", "store", "model", "server.host", "server.port", "privacy")


#: seconds of the stop deadline kept for the steps after the log flush and the control loop
#: (watcher, batcher, log writer, store: each returns at once when nothing is left to do)
STOP_RESERVE_S = 1.0


class RunState(enum.StrEnum):
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    RELOADING = "reloading"
    STOPPING = "stopping"
    STOPPED = "stopped"


_LEGAL = {
    RunState.CREATED: {RunState.STARTING, RunState.STOPPED},
    RunState.STARTING: {RunState.RUNNING, RunState.STOPPING},
    RunState.RUNNING: {RunState.RELOADING, RunState.STOPPING},
    RunState.RELOADING: {RunState.RUNNING, RunState.STOPPING},
    RunState.STOPPING: {RunState.STOPPED},
    RunState.STOPPED: set(),
}


class IllegalTransitionError(AdaptdError):
    """A lifecycle step was called in a state it cannot start from."""


def restart_keys_changed(old: Settings, new: Settings) -> list[str]:
    """The keys under :data:`RESTART_KEYS` that differ, named down to the field
    (``model.base``, not ``model``), so the refusal says what to put back."""
    changed: list[str] = []
    for key in RESTART_KEYS:
        section, _, field = key.partition(".")
        a: Any = getattr(old, section)
        b: Any = getattr(new, section)
        if field:
            a, b = getattr(a, field), getattr(b, field)
        if a == b:
            continue
        if isinstance(a, BaseModel):
            changed.extend(
                f"{key}.{name}"
                for name in type(a).model_fields
                if getattr(a, name) != getattr(b, name)
            )
        else:
            changed.append(key)
    return changed


class Service:
    """One adaptd daemon: ``run()`` = ``startup()``, ``main_loop()``, ``shutdown()``."""

    def __init__(
        self,
        config_path: Path | None = None,
        *,
        role: Role = Role.ALL,
        settings: Settings | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.config_path = config_path
        self.role = role
        self.clock = clock
        self._settings = settings
        self._state = RunState.CREATED
        self._signals: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._stack = ExitStack()
        #: the control loop's teardowns, run together after the intake stopped, whenever the
        #: control part registered them
        self._control_stack = ExitStack()
        self._started_at = time.monotonic()
        self._status_providers: dict[str, Callable[[], dict[str, Any]]] = {}
        self._reload_hooks: list[Callable[[Settings], None]] = []
        self._reload: dict[str, Any] = {"ok": True, "ts": None, "error": None, "restart": []}
        self._store_error: str | None = None
        self._store_since: datetime | None = None
        self._stop_deadline: float | None = None
        self.engine: Engine | None = None
        self.metrics: Metrics | None = None
        self.host: ModelHost | None = None
        self.batcher: Batcher | None = None
        #: the control role's election; the control loop runs only while it leads
        self.leadership: Leadership | None = None
        self.log: PredictionLog | None = None
        self.swapper: Swapper | None = None
        self.http_port: int | None = None
        self._server: Any = None
        self._server_thread: threading.Thread | None = None
        self._stall_s = liveness.DEFAULT_STALL_S

    # ------------------------------------------------------------------ run state

    @property
    def state(self) -> RunState:
        return self._state

    def _transition(self, new: RunState) -> None:
        if new not in _LEGAL[self._state]:
            raise IllegalTransitionError(f"cannot go from {self._state} to {new}")
        logger.debug("state %s -> %s", self._state, new)
        self._state = new

    @property
    def settings(self) -> Settings:
        assert self._settings is not None, "settings are loaded in startup()"
        return self._settings

    # ------------------------------------------------------------------ run

    def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, stop; returns the process exit code."""
        self.install_signal_handlers()
        try:
            self.startup()
            self.main_loop()
        finally:
            self.shutdown()
        return 0

    def install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.record_signal)

    def record_signal(self, signum: int, _frame: object = None) -> None:
        # NO LOGGING here: only queue the signal (SimpleQueue.put is reentrant).
        self._signals.put(signum)

    # ------------------------------------------------------------------ startup

    def startup(self) -> None:
        self._transition(RunState.STARTING)
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        settings = self.settings
        use_private_umask()  # the store, adapters and run files are 0600/0700 whatever the umask
        configure_logging(
            settings.logging.level,
            json_lines=settings.logging.json_lines,
            text_filter=log_filter(settings.privacy),
        )
        watchdog_s = sdnotify.watchdog_seconds()
        self._stall_s = liveness.stall_limit(watchdog_s)
        logger.info("adaptd %s starting (role %s)", __version__, self.role)
        self.engine = open_store(settings)
        self._stack.callback(self.engine.dispose)
        self.metrics = Metrics(CollectorRegistry(auto_describe=True))
        self.metrics.daemon.build_info.info({"version": __version__})
        self.texts = start_guard(settings.privacy, settings.state_dir, self.metrics.privacy)
        self._record_reload(ok=True)  # the config and policies this start loaded
        self._mark_store(None)  # open_store just reached it
        if self.role != Role.CONTROL:
            self._start_serving(settings)
        # Serving: the active version is served before READY. Control: a first store probe.
        swapper = self.swapper = self._swapper()
        swapper.request_swap()
        swapper.start()
        self._stack.callback(lambda: swapper.stop(self._stop_left(5.0)))
        if self.engine.dialect.name == "postgresql":
            # A promotion made on another host is built within milliseconds, not at the next poll.
            listener = RegistryListener(self.engine, swapper.wake)
            listener.start()
            self._stack.callback(lambda: listener.stop(self._stop_left(2.0)))
        self._start_http(settings)
        self._stack.callback(self._stop_control)
        if self.role != Role.SERVE:
            self._start_control()
        # Registered last so it runs first: what was accepted is secured before the control
        # loop is asked to stop, which may wait for a running check or retrain.
        self._stack.callback(self._stop_intake)
        freeze_startup_objects()  # no 400 ms full-GC pauses walking what startup loaded
        self._stack.callback(gc.unfreeze)  # stopped: what it held may be collected again
        self._transition(RunState.RUNNING)
        serving = self.host.active.version[:12] if self.host and self.host.active else "none"
        sdnotify.ready(f"serving adapter {serving} on {settings.server.host}:{self.http_port}")
        if watchdog_s is not None:
            watchdog = liveness.Watchdog(self.stuck, watchdog_s=watchdog_s)
            watchdog.start()
            self._stack.callback(watchdog.stop)  # first to go: a draining daemon is not stuck
        logger.info("adaptd ready on %s:%s", settings.server.host, self.http_port)

    def _start_serving(self, settings: Settings) -> None:
        assert self.engine is not None and self.metrics is not None
        started = time.perf_counter()
        self.host = ModelHost(
            base=resolve_base(settings.model.base),
            labels=settings.model.labels,
            pooling=settings.model.pooling,
            device=settings.model.device,
            dtype=settings.model.dtype,
            merge_adapters=settings.model.merge_adapters,
            threads=settings.model.threads,
            max_length=settings.model.max_length,
            safetensors_only=settings.model.safetensors_only,
        )
        self.metrics.adapters.load_duration.labels("base").observe(time.perf_counter() - started)
        self.log = PredictionLog(
            self.engine,
            self.metrics.log,
            buffer_rows=settings.serving.log_buffer_rows,
            buffer_bytes=settings.serving.log_buffer_bytes,
            flush_ms=settings.serving.log_flush_ms,
        )
        self.log.start()
        log = self.log
        self._stack.callback(lambda: log.stop(self._stop_left()))
        self.batcher = Batcher(
            self.host,
            self.metrics,
            max_batch=settings.serving.max_batch,
            max_wait_ms=settings.serving.max_wait_ms,
            queue_size=settings.serving.queue_size,
            on_swap=lambda swap: self.swapper.on_swap(swap) if self.swapper else None,
        )
        self.batcher.start()
        batcher = self.batcher
        self._stack.callback(lambda: batcher.stop(self._stop_left()))

    def _swapper(self) -> Swapper:
        assert self.engine is not None and self.metrics is not None

        def retry() -> RetrySettings:
            serving = self.settings.serving
            return RetrySettings(
                first_s=serving.refused_retry_s,
                max_s=serving.refused_retry_max_s,
                poll_s=serving.registry_poll_s,
            )

        port = StoreRegistry(
            engine=self.engine,
            clock=self.clock,
            base=self.host.base_info if self.host is not None else None,
            cache_dir=self.settings.adapters_dir,
        )
        return Swapper(
            port,
            self.metrics.adapters,
            host=self.host,
            batcher=self.batcher,
            settings=retry,
            on_probe=self._mark_store,
        )

    def _start_http(self, settings: Settings) -> None:
        import uvicorn

        assert self.engine is not None and self.metrics is not None
        ctx = ServingContext(
            settings=lambda: self.settings,
            engine=self.engine,
            metrics=self.metrics,
            batcher=self.batcher,
            log=self.log,
            labels=tuple(settings.model.labels),
            not_ready=self.not_ready,
            stuck=self.stuck,
            status=self.status,
            promote=self._promote,
            rollback=self._rollback,
            texts=self.texts,
            clock=self.clock,
        )
        config = uvicorn.Config(
            create_app(ctx),
            host=settings.server.host,
            port=settings.server.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=int(max(1, settings.server.drain_timeout_s)),
        )
        server = uvicorn.Server(config)
        # In a thread uvicorn does not install signal handlers: the signals stay ours.
        thread = threading.Thread(target=server.run, name="adaptd-http", daemon=True)
        thread.start()
        deadline = time.monotonic() + 30.0
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(
                    f"server: cannot listen on {settings.server.host}:{settings.server.port} "
                    "(address in use or not permitted?)"
                )
            time.sleep(0.01)
        self._server, self._server_thread = server, thread
        self.http_port = int(server.servers[0].sockets[0].getsockname()[1])
        self._stack.callback(self._stop_http)

    def _start_control(self) -> None:
        """The control role: scheduler, monitors, policies, retraining, probation, run only
        while this daemon is the elected leader (a replica is never a second controller)."""
        from adaptd.control.leader import elect

        self.leadership = elect(self.control_context(), start=self._take_control)

    def _take_control(self, ctx: ControlContext) -> DaemonControl:
        """Called once per term when this daemon wins the election: repair what a previous
        leader left behind, then start the control loop. Only the leader repairs, so a standby
        never marks the leader's running retrain as interrupted."""
        from adaptd.control.wiring import start_control
        from adaptd.retraining.repair import repair

        rt = self.settings.retraining
        try:
            # Holding the retrain lock: a retrain started by `adaptd retrain` is not a leftover.
            with retrain_lock(ctx.engine, clock=self.clock):
                repair(
                    ctx.engine,
                    state_dir=self.settings.state_dir,
                    adapters_dir=self.settings.adapters_dir,
                    now=self.clock(),
                    tmp_max_age_s=rt.tmp_max_age_s,
                    run_max_age_s=rt.run_dir_max_age_s,
                )
        except LockBusyError as e:
            logger.info("startup repair skipped: %s", e)
        return start_control(ctx)

    @property
    def control(self) -> DaemonControl | None:
        """The running control loop: None on a serve replica and on a standby."""
        return self.leadership.control if self.leadership is not None else None

    def control_context(self) -> ControlContext:
        assert self.engine is not None and self.metrics is not None
        return ControlContext(
            engine=self.engine,
            metrics=self.metrics,
            settings=lambda: self.settings,
            host=self.host,
            register_status=self.register_status,
            register_reload=self._reload_hooks.append,
            on_shutdown=self._on_shutdown,
            request_swap=self._request_swap,
            predict=self._predict_labels if self.batcher is not None else None,
        )

    def _predict_labels(self, texts: Sequence[str]) -> list[str]:
        assert self.batcher is not None
        return [p.label for p in self.batcher.submit(list(texts)).result(timeout=60)]

    def _on_shutdown(self, teardown: Callable[[], object]) -> None:
        self._control_stack.callback(teardown)

    def register_status(self, name: str, provider: Callable[[], dict[str, Any]]) -> None:
        if name in self._status_providers or name in {"adapter", "queue", "store", "log", "config"}:
            raise ValueError(f"status section {name!r} is already registered")
        self._status_providers[name] = provider

    # ------------------------------------------------------------------ main loop

    def main_loop(self, *, poll_s: float = 1.0) -> None:
        """Dispatch recorded signals until a stop is requested."""
        while self._state in (RunState.RUNNING, RunState.RELOADING):
            try:
                signum = self._signals.get(timeout=poll_s)
            except queue.Empty:
                continue
            self.dispatch(signum)

    def dispatch(self, signum: int) -> None:
        if signum in (signal.SIGTERM, signal.SIGINT):
            self.handle_term()
        elif signum == signal.SIGHUP:
            self.handle_hup()

    def handle_term(self) -> None:
        """The first SIGTERM/SIGINT: stop; shutdown() drains requests, then flushes the log."""
        if self._state in (RunState.RUNNING, RunState.RELOADING, RunState.STARTING):
            logger.info("stop requested: draining in-flight requests")
            self._transition(RunState.STOPPING)

    def handle_hup(self) -> bool:
        """Re-read config (and, through the reload hooks, policies). A bad file is logged,
        counted and shown in /v1/status; the previous config stays. Returns success."""
        if self._state != RunState.RUNNING:
            return False
        self._transition(RunState.RELOADING)
        sdnotify.reloading()
        ts = self.clock().isoformat()
        restart: list[str] = []
        try:
            new = load_settings(self.config_path)
            # Checked before any hook runs: a refused reload changes nothing, policies included.
            restart = restart_keys_changed(self.settings, new)
            if restart:
                raise ConfigError(
                    f"{', '.join(restart)} changed: a running daemon cannot apply "
                    f"{'this key' if len(restart) == 1 else 'these keys'}; put the old value "
                    "back and reload, or restart the daemon"
                )
            for hook in self._reload_hooks:
                hook(new)
        except (AdaptdError, ValueError) as e:
            logger.error("reload refused, keeping the previous config: %s", e)
            self._record_reload(ok=False)
            self._reload = {"ok": False, "ts": ts, "error": str(e), "restart": restart}
            self._transition(RunState.RUNNING)
            sdnotify.ready("reload refused; previous config kept")
            return False
        configure_logging(
            new.logging.level,
            json_lines=new.logging.json_lines,
            text_filter=log_filter(new.privacy),
        )
        self._apply_live(new)
        self._settings = new
        self._record_reload(ok=True)
        self._reload = {"ok": True, "ts": ts, "error": None, "restart": []}
        self._transition(RunState.RUNNING)
        sdnotify.ready("reloaded")
        logger.info("config reloaded")
        return True

    def _record_reload(self, *, ok: bool) -> None:
        # The one writer of the reload metrics: SIGHUP reaches the service on every role, and a
        # refused policy file arrives here too (a reload hook raises), so one gauge covers both.
        if self.metrics is None:
            return
        if not ok:
            self.metrics.daemon.config_reload_errors.inc()
        self.metrics.daemon.config_last_reload_success.set(1 if ok else 0)
        self.metrics.daemon.config_last_reload_timestamp.set(self.clock().timestamp())

    def _apply_live(self, new: Settings) -> None:
        """Put reloaded serving limits in force in the parts that copied them at start."""
        serving = new.serving
        if self.log is not None:
            self.log.configure(
                buffer_rows=serving.log_buffer_rows,
                buffer_bytes=serving.log_buffer_bytes,
                flush_ms=serving.log_flush_ms,
            )
        if self.batcher is not None:
            self.batcher.configure(
                max_batch=serving.max_batch,
                max_wait_ms=serving.max_wait_ms,
                queue_size=serving.queue_size,
            )

    # ------------------------------------------------------------------ shutdown

    def shutdown(self) -> None:
        if self._state == RunState.STOPPED:
            return
        if self._state == RunState.CREATED:
            self._transition(RunState.STOPPED)
            return
        if self._state != RunState.STOPPING:
            self._transition(RunState.STOPPING)
        started = time.monotonic()
        self._stop_deadline = started + self.settings.server.stop_timeout_s
        sdnotify.stopping("draining")
        try:
            self._stack.close()
        finally:
            self._transition(RunState.STOPPED)
            logger.info("adaptd stopped in %.1f s", time.monotonic() - started)

    def _stop_left(self, cap: float | None = None, *, reserve: float = 0.0) -> float:
        """Seconds a shutdown step may take: what is left of ``server.stop_timeout_s`` less a
        ``reserve`` for the steps after it (at least a moment, so a late step still tries
        once), at most ``cap``."""
        left = self.settings.server.stop_timeout_s
        if self._stop_deadline is not None:
            left = self._stop_deadline - time.monotonic()
        left -= reserve
        if cap is not None:
            left = min(left, cap)
        return max(left, 0.05)

    def _stop_intake(self) -> None:
        """Stop taking requests (draining those in flight), then write every prediction they
        produced, before anything slower is stopped."""
        self._stop_http()
        log = self.log
        if log is not None:
            started = time.monotonic()
            if log.flush(timeout=self._stop_left(reserve=STOP_RESERVE_S)):
                logger.info("prediction log flushed in %.2f s", time.monotonic() - started)
            else:
                logger.error("prediction log: flush did not finish before the stop deadline")

    def _stop_control(self) -> None:
        """Run the control loop's teardowns within the stop deadline. They may wait for a check
        or a retrain; past the deadline the daemon exits anyway (the accepted rows are already
        stored, and systemd's KillMode=mixed ends a training child left behind)."""

        def close() -> None:
            try:
                self._control_stack.close()
            except Exception:
                logger.exception("stopping the control loop")

        thread = threading.Thread(target=close, name="adaptd-control-stop", daemon=True)
        thread.start()
        thread.join(self._stop_left(reserve=STOP_RESERVE_S))
        if thread.is_alive():
            logger.warning("the control loop did not stop before the stop deadline; exiting")

    def _stop_http(self) -> None:
        server, thread = self._server, self._server_thread
        if server is None or thread is None:
            return
        self._server = self._server_thread = None
        drain = self._stop_left(self.settings.server.drain_timeout_s)
        # uvicorn reads this when it starts shutting down: a reloaded drain timeout holds.
        server.config.timeout_graceful_shutdown = max(1, int(drain))
        server.should_exit = True
        deadline = time.monotonic() + self._stop_left(drain + 2.0)
        while thread.is_alive() and time.monotonic() < deadline:
            thread.join(0.1)
            # A second SIGTERM/SIGINT while draining: stop waiting for slow clients.
            try:
                signum = self._signals.get_nowait()
            except queue.Empty:
                continue
            if signum in (signal.SIGTERM, signal.SIGINT):
                logger.warning("second stop signal: closing connections now")
                server.force_exit = True
        if thread.is_alive():
            logger.warning("HTTP server did not stop within the drain timeout")

    # ------------------------------------------------------------------ adapters and swaps

    def _mark_store(self, error: str | None) -> None:
        """Record the outcome of a store probe: logged on change, exported, shown in status.
        Readiness does not depend on it: predictions need no store (rows wait in the log)."""
        assert self.metrics is not None
        if (error is None) != (self._store_error is None) or self._store_since is None:
            self._store_since = self.clock()
            if error is not None:
                logger.error("store unreachable (predictions are still served): %s", error)
            elif self._state != RunState.STARTING:
                logger.info("store reachable again")
        self._store_error = None if error is None else mask_secrets(error)
        self.metrics.daemon.store_up.set(1 if error is None else 0)

    def _request_swap(self) -> str | None:
        return self.swapper.request_swap() if self.swapper is not None else None

    def _promote(self, version: str, reason: str) -> dict[str, Any]:
        assert self.swapper is not None, "HTTP starts after the swapper"
        return self.swapper.promote(version, reason)

    def _rollback(self, reason: str) -> dict[str, Any]:
        assert self.swapper is not None, "HTTP starts after the swapper"
        return self.swapper.rollback(reason)

    # ------------------------------------------------------------------ readiness and status

    def not_ready(self) -> str | None:
        """Why /readyz answers 503, or None when the daemon is ready."""
        if self._state in (RunState.CREATED, RunState.STARTING):
            return "starting"
        if self._state in (RunState.STOPPING, RunState.STOPPED):
            return "shutting down"
        if self.role == Role.CONTROL:
            return None
        host = self.host
        if host is None or host.active is None:
            refused = self.swapper.last_refusal() if self.swapper is not None else None
            return refused or NO_ADAPTER
        return None

    def stuck(self) -> str | None:
        """Which part is stuck (dead thread, or one unit of work past the stall limit), naming
        it; None when every part this role runs is alive. /healthz and the watchdog ask this."""
        if self._state not in (RunState.RUNNING, RunState.RELOADING):
            return None
        now = time.monotonic()
        for part in (self.batcher, self.log):
            reason = part.heartbeat.stuck(now, self._stall_s) if part is not None else None
            if reason is not None:
                return reason
        if self._server_thread is not None and not self._server_thread.is_alive():
            return "http: its thread is not running"
        if self.control is not None:
            return self.control.loop.scheduler_stuck(datetime.now(UTC), self._stall_s)
        return None

    def _serving_record(self, version: str | None) -> dict[str, Any]:
        """Since when and why the serving version is the active one (the operator's first
        questions); empty when the store cannot say (status must answer during an outage)."""
        if version is None or self.engine is None:
            return {}
        try:
            record = repo.get_adapter(self.engine, version)
            # The last promotion or rollback that made it active says why; the record's own
            # reason is the one given at import and goes stale after a rollback.
            changes = repo.list_events(self.engine, kinds=("promoted", "rolled_back"), limit=50)
        except (SQLAlchemyError, AdaptdError):
            return {}
        why = next(
            (e.message for e in reversed(changes) if (e.details or {}).get("version") == version),
            record.reason,
        )
        return {
            "promoted": record.promoted.isoformat() if record.promoted else None,
            "promoted_reason": why,
        }

    def status(self) -> dict[str, Any]:
        host, batcher, log = self.host, self.batcher, self.log
        doc: dict[str, Any] = {
            "version": __version__,
            "state": str(self._state),
            "role": str(self.role),
            "uptime_seconds": round(time.monotonic() - self._started_at, 1),
            "ready": self.not_ready() is None,
            "not_ready_reason": self.not_ready(),
        }
        if host is not None:
            doc["adapter"] = {
                "serving": host.active.version if host.active else None,
                **self._serving_record(host.active.version if host.active else None),
                "previous": host.previous.version if host.previous else None,
                "pending": host.pending.version if host.pending else None,
                **(self.swapper.status() if self.swapper is not None else {}),
                "base_model": host.base_info.path,
                "pooling": host.pooling,
                "pooling_reason": host.pooling_reason,
                "device": host.device,
                "dtype": host.dtype,
                "merge_adapters": host.merge_adapters,
            }
        if batcher is not None:
            doc["queue"] = {
                "depth": batcher.depth,
                "size": batcher.queue_size,
                "max_batch": batcher.max_batch,
                "max_wait_ms": batcher.max_wait_s * 1000,
            }
        doc["store"] = {
            "up": self._store_error is None,
            "error": self._store_error,
            "since": self._store_since.isoformat() if self._store_since else None,
        }
        if log is not None:
            doc["log"] = log.state().as_dict()
        doc["config"] = {
            "path": str(self.config_path) if self.config_path else None,
            "last_reload": dict(self._reload),
        }
        for name, provider in self._status_providers.items():
            try:
                doc[name] = provider()
            except Exception as e:
                logger.exception("status provider %s", name)
                doc[name] = {"error": f"{type(e).__name__}: {e}"}
        return doc
