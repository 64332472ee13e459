"""The data-lifecycle jobs of the control role: retention passes, and retrains an operator
queued (``adaptd data forget --retrain``), both in the scheduler's maintenance thread."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from adaptd.policy.engine import Decision, DecisionKind
from adaptd.retention.prune import prune
from adaptd.storage import repository as repo

if TYPE_CHECKING:
    from adaptd.control.context import ControlContext
    from adaptd.control.loop import ControlLoop

logger = logging.getLogger(__name__)

RETENTION_JOB = "retention"
QUEUE_JOB = "queued_retrains"
#: how soon a queued retrain starts: an operator who asked for one waits at most this long
QUEUE_POLL_S = 30.0
#: the "policy" a queued retrain runs under (no policy file has this name, so its outcome
#: changes no policy's state)
OPERATOR = "operator"


class LifecycleJobs:
    def __init__(self, ctx: ControlContext, loop: ControlLoop) -> None:
        self.ctx = ctx
        self.loop = loop

    def start(self) -> None:
        every = self.ctx.settings().retention.interval_s
        self.loop.add_periodic(RETENTION_JOB, "retention pass", self.prune, every)
        self.loop.add_periodic(QUEUE_JOB, "queued retrains", self.start_queued, QUEUE_POLL_S)

    def prune(self) -> None:
        try:
            prune(
                self.ctx.engine,
                self.ctx.settings(),
                datetime.now(UTC),
                metrics=self.ctx.metrics.retention,
            )
        except Exception:
            logger.exception("retention pass failed")

    def start_queued(self) -> None:
        """Hand the oldest queued retrain to the loop, unless a retrain is running (then the
        next poll tries again: coalescing it would drop the operator's request)."""
        if self.loop.retrain_running:
            return
        try:
            queued = repo.queued_runs(self.ctx.engine)
        except Exception:
            logger.exception("reading queued retrains failed")
            return
        if not queued:
            return
        run = queued[0]
        logger.info("starting queued retrain %d: %s", run.id, run.reason)
        self.loop.request_retrain(
            Decision(
                policy=OPERATOR,
                kind=DecisionKind.ACTION,
                ts=datetime.now(UTC),
                action="retrain",
                message=run.reason or "queued retrain",
                # From the base model: a warm start would carry over what the champion learned.
                overrides={"queued_run": run.id, "warm_start": False},
            )
        )


def start_lifecycle_jobs(ctx: ControlContext, loop: ControlLoop) -> LifecycleJobs:
    jobs = LifecycleJobs(ctx, loop)
    jobs.start()
    return jobs
