"""The control loop: check -> evaluate -> act, on a schedule, inside the daemon.

Everything that touches the world comes in as a callable (:class:`Hooks`): the monitors, where
signals go, and the three actions. The loop owns what is its own business: the schedule, the
policies in force and their persisted state, events and metrics, and the single-flight rule for
retraining (never two runs at once; a retrain decided while one runs is recorded as coalesced).

Order inside one check, chosen so a crash never fires an action twice: evaluate, then persist the
new state and the events, then dispatch. A crash between the two loses at most one action, which
the next trip brings back; the opposite order could retrain twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from adaptd.control import schedule
from adaptd.control.schedule import CHECK_JOB, MAINTENANCE, RETRAIN_JOB
from adaptd.control.settings import SchedulerSettings
from adaptd.control.single_flight import RetrainSlot
from adaptd.metrics import Metrics
from adaptd.policy.engine import (
    Decision,
    DecisionKind,
    EvaluationContext,
    evaluate,
    record_retrain,
)
from adaptd.policy.loading import PolicyError
from adaptd.policy.schema import Policy
from adaptd.policy.state import PolicyStates
from adaptd.signals import Signal, Status
from adaptd.storage import repository
from adaptd.storage.engine import log_store_failure
from adaptd.storage.records import Event

logger = logging.getLogger(__name__)

PHASES = ("idle", "pending", "tripped", "refining")


def _nothing(_: Sequence[Signal]) -> None:
    return None


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Hooks:
    """How the loop reaches the rest of the daemon; the composition root provides these."""

    #: run the monitors for a check at ``now``
    check: Callable[[datetime], Sequence[Signal]]
    #: start a retrain run and return when it ended (it runs in the retrain job's thread); a
    #: result with a ``status`` (the job's RunOutcome) is fed back to the policy: a promotion
    #: ends the episode, a rejection makes it wait for more labels
    retrain: Callable[[Decision], object]
    rollback: Callable[[Decision], object]
    alert: Callable[[Decision], object]
    #: keep the signals (store) and publish them (Prometheus gauges)
    store_signals: Callable[[Sequence[Signal]], None] = _nothing
    export_signals: Callable[[Sequence[Signal]], None] = _nothing
    #: the active adapter and its validation values, read at each check
    context: Callable[[], EvaluationContext] = EvaluationContext
    clock: Callable[[], datetime] = _utcnow


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckOutcome:
    ts: datetime
    signals: Sequence[Signal] = ()
    decisions: Sequence[Decision] = ()
    events: Sequence[Event] = ()
    error: str | None = None


@dataclass(slots=True, kw_only=True)
class _ReloadStatus:
    ok: bool = True
    ts: datetime | None = None
    errors: list[str] = field(default_factory=list)


class ControlLoop:
    """Scheduler, policies in force and their state, for one daemon (the control role)."""

    def __init__(
        self,
        *,
        engine: Engine,
        metrics: Metrics,
        settings: SchedulerSettings,
        policies: Sequence[Policy],
        hooks: Hooks,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._settings = settings
        self._policies = list(policies)
        self._hooks = hooks
        self._lock = threading.RLock()  # policies, states, last check
        # One check at a time: a scheduled check and a manual one must not interleave states.
        # Reentrant: a retrain run inline (no scheduler) reports its outcome inside the check.
        self._check_lock = threading.RLock()
        self._states = PolicyStates.from_json(repository.load_policy_states(engine))
        self._slot = RetrainSlot()
        self._reload = _ReloadStatus(ts=hooks.clock())
        self._last_check: CheckOutcome | None = None
        self._last_check_duration: float | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._export_states()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the scheduler with the check job; idempotent."""
        if self._scheduler is not None:
            return
        scheduler = schedule.make_scheduler(self._settings)
        scheduler.add_listener(self._on_job_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        # next_run_time=None would add the job paused, so it is only passed to run one now.
        # The scheduler keeps wall-clock time; the clock hook only dates what a check sees.
        first: dict[str, Any] = (
            {"next_run_time": datetime.now(UTC)} if self._settings.check_on_start else {}
        )
        scheduler.add_job(
            self._scheduled_check,
            trigger=schedule.check_trigger(self._settings),
            id=CHECK_JOB,
            name="monitor check",
            **first,
        )
        scheduler.start()
        self._scheduler = scheduler
        logger.info("scheduler started: %s", schedule.describe(self._settings))

    def add_periodic(
        self, job_id: str, name: str, func: Callable[[], object], every_s: float
    ) -> None:
        """Run ``func`` every ``every_s`` seconds in the maintenance thread (after start)."""
        if self._scheduler is None:
            raise RuntimeError("the scheduler is not running")
        self._scheduler.add_job(
            func,
            trigger=IntervalTrigger(seconds=every_s, timezone=UTC),
            id=job_id,
            name=name,
            executor=MAINTENANCE,
        )

    def shutdown(self, *, wait: bool = True) -> None:
        """Stop scheduling; with ``wait`` a running check or retrain job is waited for."""
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=wait)
            logger.info("scheduler stopped")

    def scheduler_stuck(self, now: datetime, stall_s: float) -> str | None:
        """For the watchdog: why the scheduler is stuck at wall-clock ``now`` (its thread died,
        or the check is overdue by ``stall_s``: nothing is dispatching jobs), or None."""
        scheduler = self._scheduler
        if scheduler is None:  # not started yet, or shut down: nothing is meant to run
            return None
        # APScheduler 3 exposes no public handle on its thread; a dead one is silent otherwise.
        thread = getattr(scheduler, "_thread", None)
        if not scheduler.running or thread is None or not thread.is_alive():
            return "scheduler: its thread is not running"
        due = getattr(scheduler.get_job(CHECK_JOB), "next_run_time", None)
        if due is not None and (now - due).total_seconds() > stall_s:
            return f"scheduler: the check due at {due.isoformat()} was never dispatched"
        return None

    def reload(
        self,
        settings: SchedulerSettings,
        policies: Sequence[Policy],
        errors: Sequence[PolicyError | str] = (),
    ) -> bool:
        """Put new settings and policies in force, unless ``errors`` says the files were bad.

        With errors, the previous policies and schedule stay; the errors are logged and shown by
        :meth:`status` (the reload metrics belong to the service, which handles SIGHUP on every
        role). Returns whether the reload took effect.
        """
        now = self._hooks.clock()
        if errors:
            for error in errors:
                logger.error("reload refused: %s", error)
            self.record_reload_failure([str(e) for e in errors], now=now)
            return False
        with self._lock:
            gone = {p.name for p in self._policies} - {p.name for p in policies}
            self._policies = list(policies)
            previous, self._settings = self._settings, settings
        for name in gone:  # a removed policy's gauges would otherwise report it forever
            for phase in PHASES:
                self._metrics.policies.state.remove(name, phase)
            self._metrics.policies.pending_checks.remove(name)
            self._metrics.policies.forget_alert(name)
            self._metrics.policies.labels_awaited.remove(name)
        if self._scheduler is not None and schedule.trigger_key(previous) != schedule.trigger_key(
            settings
        ):
            self._scheduler.reschedule_job(CHECK_JOB, trigger=schedule.check_trigger(settings))
        self._reload = _ReloadStatus(ok=True, ts=now)
        self._export_states()
        logger.info("reloaded: %d policies, %s", len(self._policies), schedule.describe(settings))
        return True

    def record_reload_failure(self, errors: Sequence[str], *, now: datetime | None = None) -> None:
        """Report a reload that failed before reaching the loop (e.g. a bad config file)."""
        now = now or self._hooks.clock()
        self._reload = _ReloadStatus(ok=False, ts=now, errors=list(errors))

    @property
    def policies(self) -> list[Policy]:
        with self._lock:
            return list(self._policies)

    @property
    def states(self) -> PolicyStates:
        with self._lock:
            return self._states

    # ------------------------------------------------------------------ one check

    def run_check_once(self, now: datetime) -> CheckOutcome:
        """One pass: monitors, store and export, evaluate, persist, dispatch. Never raises for a
        failing hook: the failure becomes an event, a metric and the status's ``last_check``."""
        started = time.perf_counter()
        try:
            with self._check_lock:
                outcome = self._check(now)
        finally:
            duration = time.perf_counter() - started
            self._metrics.monitors.check_duration.observe(duration)
        with self._lock:
            self._last_check, self._last_check_duration = outcome, duration
        self._metrics.monitors.checks.labels(result="error" if outcome.error else "ok").inc()
        return outcome

    def _check(self, now: datetime) -> CheckOutcome:
        try:
            signals = list(self._hooks.check(now))
        except Exception as e:
            log_store_failure(logger, "check failed", e)
            event = Event(
                ts=now, kind="check_failed", source="control", message=f"monitors failed: {e}"
            )
            self._add_events([event])
            return CheckOutcome(ts=now, events=[event], error=f"{type(e).__name__}: {e}")
        for hook in (self._hooks.store_signals, self._hooks.export_signals):
            try:
                hook(signals)
            except Exception as e:
                log_store_failure(logger, "storing or exporting signals failed", e)
        try:
            context = self._hooks.context()
        except Exception as e:
            log_store_failure(
                logger, "reading the evaluation context failed; validation values unknown", e
            )
            context = EvaluationContext()

        with self._lock:
            decisions, states = evaluate(self._policies, signals, self._states, now, context)
            self._states = states
        events = self._persist(decisions, now)

        more: list[Event] = []
        for decision in decisions:
            if decision.kind is DecisionKind.ACTION:
                more.extend(self._dispatch(decision))
        return CheckOutcome(ts=now, signals=signals, decisions=decisions, events=[*events, *more])

    def _persist(self, decisions: Sequence[Decision], now: datetime) -> list[Event]:
        """Save the states, then store, count and export what was decided."""
        with self._lock:
            names = {p.name for p in self._policies}
            persisted = {k: v for k, v in self._states.to_json().items() if k in names}
        events = [d.to_event() for d in decisions]
        try:
            repository.save_policy_states(self._engine, persisted, now)
        except Exception as e:
            log_store_failure(logger, "saving policy state failed", e)
        self._add_events(events)
        self._count(decisions)
        self._export_states()
        return events

    def _record_outcome(self, decision: Decision, status: str) -> list[Event]:
        """Feed a retrain's outcome back into its policy (see ``policy.engine.record_retrain``)."""
        now = self._hooks.clock()
        try:
            total = self._hooks.context().labels_total
        except Exception as e:
            log_store_failure(
                logger, "reading the evaluation context failed; labels not counted", e
            )
            total = None
        with self._check_lock:
            with self._lock:
                decisions, self._states = record_retrain(
                    self._policies, self._states, decision, status, now, total
                )
            return self._persist(decisions, now)

    def _scheduled_check(self) -> None:
        self.run_check_once(self._hooks.clock())

    # ------------------------------------------------------------------ actions

    def _dispatch(self, decision: Decision) -> list[Event]:
        """Run a decided action; returns the events it stored."""
        if decision.action == "retrain":
            return self._start_retrain(decision)
        hook = self._hooks.rollback if decision.action == "rollback" else self._hooks.alert
        try:
            hook(decision)
        except Exception as e:
            logger.exception("%s hook of policy %s failed", decision.action, decision.policy)
            failure = self._failure(decision, e)
            self._add_events([failure])
            return [failure]
        return []

    def _failure(self, decision: Decision, error: BaseException) -> Event:
        self._metrics.policies.action_failures.labels(action=decision.action).inc()
        return Event(
            ts=self._hooks.clock(),
            kind="action_failed",
            source=f"policy/{decision.policy}",
            message=f"{decision.action} failed: {type(error).__name__}: {error}",
            details={"policy": decision.policy, "action": decision.action},
        )

    def _start_retrain(self, decision: Decision) -> list[Event]:
        holder = self._slot.claim(decision.policy, decision.ts)
        if holder is not None:
            self._metrics.policies.suppressions.labels(
                policy=decision.policy, reason="coalesced"
            ).inc()
            # Stored before the outcome's own event, so the events read in order.
            coalesced = Event(
                ts=decision.ts,
                kind="coalesced",
                source=f"policy/{decision.policy}",
                message=f"retrain coalesced into the run started by policy "
                f"{holder.policy} at {holder.started.isoformat()}",
                details={"policy": decision.policy, "running_policy": holder.policy},
            )
            self._add_events([coalesced])
            return [coalesced, *self._record_outcome(decision, "coalesced")]
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.add_job(
                self._retrain_job,
                args=[decision],
                id=RETRAIN_JOB,
                name=f"retrain for policy {decision.policy}",
                executor=RETRAIN_JOB,
                misfire_grace_time=None,
            )
        else:
            # Without a running scheduler (a one-off check from the CLI) the run happens inline.
            self._retrain_job(decision)
        return []

    def _retrain_job(self, decision: Decision) -> None:
        error: str | None = None
        status: object = None
        try:
            try:
                status = getattr(self._hooks.retrain(decision), "status", None)
            except Exception as e:
                logger.exception("retrain for policy %s failed", decision.policy)
                error = f"{type(e).__name__}: {e}"
                status = "failed"
                self._add_events([self._failure(decision, e)])
            # The outcome goes into the policy before the slot frees, and no check runs between
            # the two: whoever sees `retrain_running` clear (a check, /v1/status, a test) also
            # sees the policy's next phase and the outcome's event, never the run half over.
            with self._check_lock:
                if isinstance(status, str):
                    self._record_outcome(decision, status)
        finally:
            self._slot.release(self._hooks.clock(), error)

    def request_retrain(self, decision: Decision) -> list[Event]:
        """A retrain no policy decided (an operator queued it), under the single-flight rule."""
        return self._start_retrain(decision)

    @property
    def retrain_running(self) -> bool:
        return self._slot.busy

    # ------------------------------------------------------------------ status and metrics

    def status(self) -> dict[str, Any]:
        """What ``/v1/status`` shows of the control loop: jobs, last check, retrain, policies."""
        scheduler = self._scheduler
        with self._lock:
            last = self._last_check
            policies = [self._policy_status(p) for p in self._policies]
            duration = self._last_check_duration
        return {
            # First, so that the one-line `adaptd status` shows it before anything is cut off.
            "summary": [_summary_line(p) for p in policies if p["phase"] != "idle"],
            "scheduler": {
                "running": scheduler is not None and scheduler.running,
                "schedule": schedule.describe(self._settings),
                "jobs": schedule.job_list(scheduler),
            },
            "last_check": None
            if last is None
            else {
                "ts": last.ts.isoformat(),
                "duration_s": duration,
                "signals": len(last.signals),
                "drifted": sorted(s.name for s in last.signals if s.status is Status.DRIFT),
                "decisions": len(last.decisions),
                "error": last.error,
            },
            "retrain": self._slot.status(),
            "policies": policies,
            "reload": {
                "ok": self._reload.ok,
                "ts": self._reload.ts.isoformat() if self._reload.ts else None,
                "errors": list(self._reload.errors),
            },
        }

    def _policy_status(self, policy: Policy) -> dict[str, Any]:
        st = self._states.get(policy.name)
        return {
            "name": policy.name,
            "enabled": policy.enabled,
            "action": policy.action.type,
            "phase": st.phase,
            "pending": st.pending,
            "tripped_at": st.tripped_at.isoformat() if st.tripped_at else None,
            "action_due": st.action_due,
            "last_action": st.last_action.isoformat() if st.last_action else None,
            "actions_last_24h": len(st.recent_actions),
            "cooldown_from": _iso(st.cooldown_from),
            # the evidence a retrain waits for: labels since the shift, and the next target
            "labels": None
            if not st.tripped or st.new_labels is None
            else {
                "since": _iso(st.episode_since),
                "new": st.new_labels,
                "needed": st.labels_needed,
                "awaited": st.labels_awaited,
                "waiting_since": _iso(st.waiting_since),
            },
            # after a promotion: the episode's labels, and where the next refinement starts
            "refine": None
            if not st.refining
            else {
                "since": _iso(st.refine_since),
                "new": st.new_labels,
                # None while a refinement runs
                "needed": st.refine_needed,
                "left": st.refine_left,
            },
        }

    def _count(self, decisions: Sequence[Decision]) -> None:
        m = self._metrics.policies
        for d in decisions:
            if d.kind is DecisionKind.TRIP:
                m.trips.labels(policy=d.policy, action=d.action).inc()
            elif d.kind is DecisionKind.CLEAR:
                m.clears.labels(policy=d.policy).inc()
            elif d.kind is DecisionKind.ACTION:
                m.actions.labels(policy=d.policy, action=d.action).inc()
            elif d.reason is not None:
                m.suppressions.labels(policy=d.policy, reason=d.reason.value).inc()

    def _export_states(self) -> None:
        with self._lock:
            pairs = [(p, self._states.get(p.name)) for p in self._policies]
        for p, st in pairs:
            name = p.name
            for phase in PHASES:
                self._metrics.policies.state.labels(policy=name, state=phase).set(
                    1 if st.phase == phase else 0
                )
            self._metrics.policies.pending_checks.labels(policy=name).set(st.pending)
            self._metrics.policies.labels_awaited.labels(policy=name).set(st.labels_awaited)
            # Raised once the alert action has run for this trip (not while cooldown or budget
            # holds it back), lowered when the policy clears: the policy's hysteresis decides.
            if p.action.type == "alert":
                self._metrics.policies.set_alert(
                    name,
                    severity=p.action.severity,
                    description=p.description,
                    active=st.tripped and not st.action_due,
                )
            else:
                self._metrics.policies.forget_alert(name)

    # ------------------------------------------------------------------ helpers

    def _add_events(self, events: Sequence[Event]) -> None:
        if not events:
            return
        try:
            repository.add_events(self._engine, events)
        except Exception as e:
            log_store_failure(logger, f"storing {len(events)} events failed", e)

    def _on_job_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            logger.warning("job %s missed its run at %s", event.job_id, event.scheduled_run_time)
            if event.job_id == CHECK_JOB:
                self._metrics.monitors.checks.labels(result="missed").inc()
        else:
            logger.error("job %s raised: %s", event.job_id, event.exception)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _summary_line(status: dict[str, Any]) -> str:
    """``retrain-on-shift: tripped, waiting for 120 more labels (180 of 300 since ...)``."""
    line = f"{status['name']}: {status['phase']}"
    labels = status.get("labels")
    if labels and labels["awaited"]:
        since = f"since {labels['since']}" if labels["since"] else "in the store"
        line += (
            f", waiting for {labels['awaited']} more labels "
            f"({labels['new']} of {labels['needed']} {since})"
        )
    elif status["phase"] == "tripped" and status["action_due"]:
        line += ", action due"
    refine = status.get("refine")
    if refine:
        line += (
            ", refinement running"
            if refine["needed"] is None
            else f", next refinement at {refine['needed']} labels ({refine['new']} so far)"
        )
    return line
