"""The APScheduler 3 side of the control loop: the scheduler, the check trigger, the job list.

Two executors of one thread each: checks never overlap (``max_instances=1``) and a retrain runs
beside them without delaying the next check. Missed runs (a suspended machine, a long check)
coalesce into one, and a run later than ``misfire_grace_s`` is skipped and reported.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from adaptd.control.settings import SchedulerSettings

CHECK_JOB = "check"
RETRAIN_JOB = "retrain"
#: housekeeping (retention passes, queued retrains): its own thread, never delaying a check
MAINTENANCE = "maintenance"


def make_scheduler(settings: SchedulerSettings) -> BackgroundScheduler:
    return BackgroundScheduler(
        timezone=UTC,
        executors={
            "default": ThreadPoolExecutor(max_workers=1),
            RETRAIN_JOB: ThreadPoolExecutor(max_workers=1),
            MAINTENANCE: ThreadPoolExecutor(max_workers=1),
        },
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(max(1, settings.misfire_grace_s)),
        },
    )


def check_trigger(settings: SchedulerSettings) -> CronTrigger | IntervalTrigger:
    if settings.check_cron:
        return CronTrigger.from_crontab(settings.check_cron, timezone=settings.timezone)
    return IntervalTrigger(seconds=settings.check_interval_s, timezone=UTC)


def trigger_key(settings: SchedulerSettings) -> tuple[Any, ...]:
    """What decides the check trigger: when it differs, a reload reschedules the job."""
    return (settings.check_cron, settings.timezone, settings.check_interval_s)


def describe(settings: SchedulerSettings) -> str:
    if settings.check_cron:
        return f"cron '{settings.check_cron}' ({settings.timezone})"
    return f"every {settings.check_interval_s:g} s"


def job_list(scheduler: BackgroundScheduler | None) -> list[dict[str, Any]]:
    """The scheduled jobs as /v1/status shows them."""
    if scheduler is None:
        return []
    jobs = []
    for job in scheduler.get_jobs():
        next_run = getattr(job, "next_run_time", None)
        jobs.append(
            {
                "id": job.id,
                "name": job.name,
                "trigger": str(job.trigger),
                "next_run_time": next_run.isoformat() if next_run else None,
            }
        )
    return jobs
