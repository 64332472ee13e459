"""The control role's lifecycle jobs on a real scheduler and store: a retention pass runs in
the maintenance thread, and a queued retrain reaches the retrain hook once, never coalesced."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import Engine

from adaptd.control.loop import ControlLoop
from adaptd.control.settings import SchedulerSettings
from adaptd.metrics import new_metrics
from adaptd.retention.forget import queue_retrain
from adaptd.retention.jobs import QUEUE_JOB, RETENTION_JOB, LifecycleJobs
from adaptd.storage import repository as repo
from tests.unit.control.test_loop import World
from tests.unit.retention.builders import add_predictions, count, settings_for


@pytest.fixture
def running(sqlite_engine: Engine, tmp_path: Path) -> Iterator[tuple[LifecycleJobs, World]]:
    world = World()
    metrics = new_metrics()
    loop = ControlLoop(
        engine=sqlite_engine,
        metrics=metrics,
        settings=SchedulerSettings(check_interval_s=3600),
        policies=[],
        hooks=world.hooks(),
    )
    settings = settings_for(tmp_path, str(sqlite_engine.url), interval_s=0.5)
    ctx = SimpleNamespace(engine=sqlite_engine, metrics=metrics, settings=lambda: settings)
    loop.start()
    jobs = LifecycleJobs(ctx, loop)  # type: ignore[arg-type]
    jobs.start()
    yield jobs, world
    loop.shutdown(wait=True)


def test_the_retention_pass_runs_on_its_schedule(running: tuple[LifecycleJobs, World]) -> None:
    jobs, _ = running
    ids = {job["id"] for job in jobs.loop.status()["scheduler"]["jobs"]}
    assert {RETENTION_JOB, QUEUE_JOB} <= ids
    now = datetime.now(UTC)
    add_predictions(jobs.ctx.engine, 30, start=now - timedelta(days=120), step=timedelta(days=1))
    deadline = time.monotonic() + 10
    while count(jobs.ctx.engine, "predictions") != 0:  # the last one is 91 days old
        assert time.monotonic() < deadline, "no retention pass deleted the expired rows"
        time.sleep(0.05)
    value = jobs.ctx.metrics.registry.get_sample_value
    assert value("adaptd_retention_deleted_rows_total", {"table": "predictions"}) == 30


def test_a_queued_retrain_goes_to_the_retrain_hook_once(
    running: tuple[LifecycleJobs, World],
) -> None:
    jobs, world = running
    world.release.clear()  # the retrain "runs" until released
    run = queue_retrain(jobs.ctx.engine, datetime.now(UTC))
    jobs.start_queued()
    assert world.retrain_started.wait(10)
    jobs.start_queued()  # while it runs, the request is not handed over again (nor coalesced)
    world.release.set()
    deadline = time.monotonic() + 10
    while jobs.loop.retrain_running:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    (decision,) = world.retrains
    assert decision.overrides == {"queued_run": run, "warm_start": False}
    assert jobs.loop.status()["retrain"]["coalesced"] == 0
    assert repo.get_run(jobs.ctx.engine, run).status == "queued"  # the real job claims it
