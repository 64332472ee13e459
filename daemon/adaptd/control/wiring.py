"""The control role inside a daemon: monitors -> policies -> actions (retrain, rollback, alert),
plus probation of a freshly promoted adapter.

This is composition only: it binds the pure parts (monitoring.runner, policy.engine,
retraining.probation) to the store, the registry and the serving swap through the hooks of
:class:`ControlLoop`. ``Service._start_control`` calls :func:`start_control`.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from adaptd.adapters import registry
from adaptd.alerting import Webhook, alert_payload, instance_name
from adaptd.config import Settings
from adaptd.control.loop import ControlLoop, Hooks
from adaptd.control.policy_files import load_configured_policies
from adaptd.errors import ConfigError
from adaptd.modeling.base import inspect_base, resolve_base
from adaptd.monitoring.edges import build_windows, export_signals, hf_tokenizer, store_signals
from adaptd.monitoring.runner import run_checks
from adaptd.policy.engine import Decision, EvaluationContext
from adaptd.retention.jobs import start_lifecycle_jobs
from adaptd.retraining import probation
from adaptd.retraining.job import RetrainJob, RetrainRequest
from adaptd.retraining.registry_port import AdaptersRegistry
from adaptd.retraining.scored import SIGNAL_OF_METRIC
from adaptd.signals import Signal
from adaptd.storage import probations, repository
from adaptd.storage.records import ProbationRecord

if TYPE_CHECKING:
    from adaptd.control.context import ControlContext

logger = logging.getLogger(__name__)


class DaemonControl:
    """Everything the control role adds to a running daemon."""

    def __init__(self, ctx: ControlContext) -> None:
        self.ctx = ctx
        settings = ctx.settings()
        policies, errors = load_configured_policies(settings)
        if errors:
            raise ConfigError(str(errors[0]))
        self._job: RetrainJob | None = None
        host = ctx.host
        # A copy: a fast tokenizer sets padding and truncation on every call, so the checks'
        # calls (no truncation) beside the batcher's (truncated to max_length) would race.
        self._tokenizer = hf_tokenizer(copy.deepcopy(host.tokenizer)) if host is not None else None
        self.loop = ControlLoop(
            engine=ctx.engine,
            metrics=ctx.metrics,
            settings=settings.scheduler,
            policies=policies,
            hooks=Hooks(
                check=self.check,
                retrain=self.retrain,
                rollback=self.rollback,
                alert=self.alert,
                store_signals=lambda signals: store_signals(ctx.engine, signals),
                export_signals=lambda signals: export_signals(ctx.metrics.monitors, signals),
                context=self.context,
            ),
        )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.loop.start()
        self.ctx.on_shutdown(self.shutdown)
        self.ctx.register_status("control", self.status)
        self.ctx.register_reload(self.reload)
        self.lifecycle = start_lifecycle_jobs(self.ctx, self.loop)

    def shutdown(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self.loop.shutdown(wait=True)

    def reload(self, settings: Settings) -> None:
        policies, errors = load_configured_policies(settings)
        if not self.loop.reload(settings.scheduler, policies, errors):
            raise ConfigError(f"policies: {errors[0]}" if errors else "policies: reload refused")

    def status(self) -> dict[str, Any]:
        out = self.loop.status()
        job = self._job
        out["retrain_progress"] = job.progress if job is not None else None
        try:
            running = probations.running(self.ctx.engine)
        except SQLAlchemyError:  # status answers during a store outage (its section says so)
            out["probation"] = None
            return out
        out["probation"] = (
            {
                "version": running.version,
                "previous": running.previous,
                "since": running.started.isoformat(),
                "source": running.source,
            }
            if running is not None
            else None
        )
        return out

    # ------------------------------------------------------------------ hooks

    def check(self, now: datetime) -> Sequence[Signal]:
        settings = self.ctx.settings()
        active = repository.active_adapter(self.ctx.engine)
        reference, current = build_windows(
            self.ctx.engine,
            settings.monitors,
            active.version if active is not None else None,
            (),
            now,
            labels=settings.model.labels,
            max_text_chars=settings.serving.max_text_chars,
        )
        signals = run_checks(
            reference,
            current,
            settings.monitors,
            now=now,
            tokenizer=self._tokenizer,
            predict=self.ctx.predict,
        )
        self._check_probation(now, signals)
        return signals

    def context(self) -> EvaluationContext:
        engine = self.ctx.engine
        # Counted only where a policy can wait for labels: one COUNT per check.
        waits = any(p.enabled and p.action.type == "retrain" for p in self.loop.policies)
        labels_total = repository.count_labelled(engine) if waits else None
        min_labels = self.ctx.settings().retraining.min_labels
        active = repository.active_adapter(engine)
        if active is None:
            return EvaluationContext(labels_total=labels_total, min_labels=min_labels)
        metrics = active.metrics or {}
        validation = {
            signal: float(metrics[signal])
            for signal in SIGNAL_OF_METRIC.values()
            if isinstance(metrics.get(signal), int | float)
        }
        return EvaluationContext(
            adapter=active.version,
            validation=validation,
            labels_total=labels_total,
            min_labels=min_labels,
        )

    def retrain(self, decision: Decision) -> object:
        settings = self.ctx.settings()
        overrides = dict(decision.overrides)
        rt = settings.retraining
        # The overrides carry the names of the retraining settings they replace.
        changes = {
            k: overrides[k]
            for k in ("epochs", "learning_rate", "batch_size", "replay_ratio", "max_labels")
            if overrides.get(k) is not None
        }
        if "warm_start" in overrides:  # a queued retrain after forgetting starts from the base
            changes["warm_start"] = overrides["warm_start"]
        settings = settings.model_copy(update={"retraining": rt.model_copy(update=changes)})
        groups = tuple(settings.monitors.attributes) if overrides.get("group_reweighting") else ()
        base = inspect_base(
            resolve_base(settings.model.base), settings.model.labels, pooling=settings.model.pooling
        )
        job = RetrainJob(
            settings,
            self.ctx.engine,
            AdaptersRegistry(
                engine=self.ctx.engine,
                adapters_dir=settings.adapters_dir,
                base=base,
                max_store_bytes=settings.store.adapter_max_bytes,
            ),
            metrics=self.ctx.metrics,
            # The local child computes on this box's cores: serving gives them up meanwhile.
            lend_cores=self.ctx.host.lend_cores
            if self.ctx.host is not None and settings.retraining.executor == "local"
            else None,
        )
        self._job = job
        try:
            outcome = job.run(
                RetrainRequest(
                    reason=decision.message,
                    policy=decision.policy,
                    # the labels the policy waited for: those since the shift
                    since=decision.since,
                    group_attributes=groups,
                    queued_run=overrides.get("queued_run"),
                    refinement=decision.refinement,
                )
            )
        finally:
            self._job = None
        if outcome.status == "promoted" and outcome.candidate is not None:
            # The promotion put the candidate on probation in the store (adapters.registry).
            self.ctx.request_swap()
        return outcome

    def rollback(self, decision: Decision) -> object:
        record = registry.rollback(self.ctx.engine, datetime.now(UTC), reason=decision.message)
        self.ctx.request_swap()
        return record

    def alert(self, decision: Decision) -> object:
        # The event is already stored and counted by the loop, and adaptd_policy_alert_active
        # is raised for Prometheus; the log line is for people who tail journald, the webhook
        # for deployments that want the alert without Prometheus rules.
        logger.warning("ALERT %s: %s", decision.policy, decision.message)
        settings = self.ctx.settings().alerting
        policy = next((p for p in self.loop.policies if p.name == decision.policy), None)
        if settings.webhook_url is None or policy is None or policy.action.type != "alert":
            return None
        payload = alert_payload(
            policy=policy.name,
            severity=policy.action.severity,
            description=policy.description,
            message=decision.message,
            now=decision.ts,
            instance=instance_name(),
        )
        return Webhook(settings, self.ctx.metrics.policies).submit(payload)

    # ------------------------------------------------------------------ probation

    def _check_probation(self, now: datetime, signals: Sequence[Signal]) -> None:
        settings = self.ctx.settings()
        monitors = settings.monitors
        watch = probation.Watch(
            settings=settings.retraining.probation,
            labels=settings.model.labels,
            attributes=monitors.attributes,
            min_group_size=monitors.min_group_size,
            positive_label=monitors.positive_label,
        )
        outcome = probation.check(self.ctx.engine, now, signals, watch, rollback=self._roll_back)
        if outcome is not None and outcome.status == "rolled_back":
            self.ctx.metrics.retraining.rollbacks.inc()
            self.ctx.request_swap()

    def _roll_back(self, running: ProbationRecord, reason: str) -> None:
        registry.rollback(
            self.ctx.engine,
            datetime.now(UTC),
            reason=reason,
            to=running.previous,
            expect_active=running.version,
            source="probation",
        )


def start_control(ctx: ControlContext) -> DaemonControl:
    control = DaemonControl(ctx)
    control.start()
    return control
