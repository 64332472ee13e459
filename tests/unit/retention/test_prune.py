"""Retention passes on a real store (SQLite and PostgreSQL): ages, kept rows, batches, files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from adaptd.metrics import new_metrics
from adaptd.retention.prune import GROW_AFTER, MIN_BATCH, Pruned, next_size, prune, prune_table
from adaptd.retention.settings import RetentionSettings
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage import tables as t
from adaptd.storage.engine import make_engine
from tests.unit.retention.builders import (
    NOW,
    add_adapter,
    add_history,
    add_predictions,
    count,
    settings_for,
)

DAY = timedelta(days=1)


def by_table(results: list[Pruned]) -> dict[str, Pruned]:
    return {p.table: p for p in results}


def test_a_pass_deletes_what_is_older_than_its_age_in_batches(
    engine: Engine, tmp_path: Path
) -> None:
    # 3,000 predictions one per hour: 125 days, the oldest 35 days of them beyond 90 days.
    add_predictions(engine, 3000, start=NOW - 125 * DAY, step=timedelta(hours=1), adapter="old")
    add_history(engine, 500, start=NOW - 500 * DAY, step=DAY)
    settings = settings_for(tmp_path, str(engine.url), batch_size=200)
    expected = sum(
        1 for i in range(3000) if NOW - 125 * DAY + i * timedelta(hours=1) < NOW - 90 * DAY
    )

    dry = by_table(prune(engine, settings, NOW, dry_run=True))
    assert dry["predictions"].deleted == expected
    assert count(engine, "predictions") == 3000  # a dry run deletes nothing

    metrics = new_metrics()
    done = by_table(prune(engine, settings, NOW, metrics=metrics.retention, sleep=lambda s: None))
    assert done["predictions"].deleted == expected
    assert done["predictions"].batches == -(-expected // 200)
    assert done["feedback"].deleted == expected
    assert count(engine, "predictions") == 3000 - expected
    assert count(engine, "feedback") == 3000 - expected
    # 500 daily rows from 500 days ago: those of the last 365 days stay
    assert count(engine, "monitor_results") == 365
    assert count(engine, "events") == 365
    value = metrics.registry.get_sample_value
    assert value("adaptd_retention_deleted_rows_total", {"table": "predictions"}) == expected
    assert value("adaptd_retention_deleted_rows_total", {"table": "events"}) == 135
    assert value("adaptd_retention_max_batch_seconds") > 0
    # nothing left to do: a second pass deletes nothing
    again = by_table(prune(engine, settings, NOW, sleep=lambda s: None))
    assert all(p.deleted == 0 for p in again.values())


def test_null_keeps_forever(engine: Engine, tmp_path: Path) -> None:
    add_predictions(engine, 50, start=NOW - 1000 * DAY, step=DAY)
    settings = settings_for(tmp_path, str(engine.url), predictions=None, feedback=None)
    done = by_table(prune(engine, settings, NOW, sleep=lambda s: None))
    assert done["predictions"].deleted == 0 and done["predictions"].cutoff is None
    assert count(engine, "predictions") == 50


def test_the_monitors_reference_of_the_active_adapter_is_kept(
    engine: Engine, tmp_path: Path
) -> None:
    add_adapter(engine, "a1", status="active", path=tmp_path / "a1", promoted=NOW - 200 * DAY)
    add_predictions(engine, 300, start=NOW - 300 * DAY, step=DAY, adapter="a1")
    settings = settings_for(tmp_path, str(engine.url), batch_size=100).model_copy(
        update={
            "monitors": settings_for(tmp_path, "").monitors.model_copy(
                update={"reference_window": 40}
            )
        }
    )
    prune(engine, settings, NOW, sleep=lambda s: None)
    left = repo.recent_predictions(engine, oldest_first=True)
    # the first 40 (the reference) and the last 90 days
    assert [p.id for p in left[:40]] == [f"p{i}" for i in range(40)]
    assert len(left) == 40 + 90
    assert len(repo.labelled_predictions_for(engine, [f"p{i}" for i in range(40)])) == 40


def test_probation_keeps_both_adapters_rows(engine: Engine, tmp_path: Path) -> None:
    add_adapter(engine, "a0", status="retired", path=tmp_path / "a0", promoted=NOW - 300 * DAY)
    add_adapter(
        engine, "a1", status="active", path=tmp_path / "a1", parent="a0",
        promoted=NOW - timedelta(minutes=10),
    )  # fmt: skip
    add_predictions(engine, 100, start=NOW - 200 * DAY, step=DAY, adapter="a0", prefix="old")
    add_predictions(engine, 100, start=NOW - 200 * DAY, step=DAY, adapter="zz", prefix="other")
    add_predictions(engine, 10, start=NOW - 100 * DAY, step=DAY, adapter="a1", prefix="new")
    prune(engine, settings_for(tmp_path, str(engine.url)), NOW, sleep=lambda s: None)
    left = {p.id for p in repo.recent_predictions(engine)}
    assert {f"old{i}" for i in range(100)} <= left
    assert {f"new{i}" for i in range(10)} <= left
    assert not any(i.startswith("other") for i in left)  # no other adapter's rows
    assert count(engine, "feedback") == len(left)


def test_a_slow_batch_halves_the_next(engine: Engine, tmp_path: Path) -> None:
    add_predictions(engine, 1000, start=NOW - 400 * DAY, step=timedelta(minutes=1))
    settings = settings_for(tmp_path, str(engine.url), batch_size=400, max_batch_s=1e-9)
    done = by_table(prune(engine, settings, NOW, sleep=lambda s: None))
    # 400, 200, 100, 100, ... : every batch "held the lock too long"
    assert done["predictions"].deleted == 1000
    assert done["predictions"].batches == 2 + -(-(1000 - 600) // MIN_BATCH)


def test_the_batch_grows_back_after_a_run_of_fast_batches() -> None:
    retention = RetentionSettings(batch_size=1000, max_batch_s=0.2)
    size, fast = next_size(1000, 0.3, 5, retention)
    assert (size, fast) == (500, 0)  # slow: halved, the run of fast ones starts again
    for i in range(GROW_AFTER - 1):
        size, fast = next_size(size, 0.05, fast, retention)
        assert (size, fast) == (500, i + 1)
    # between half the budget and the budget: kept, but doubling it could cross the budget
    assert next_size(size, 0.15, fast, retention) == (500, 0)
    assert next_size(size, 0.05, fast, retention) == (1000, 0)
    assert next_size(1000, 0.05, GROW_AFTER, retention) == (1000, GROW_AFTER + 1)  # capped
    assert next_size(MIN_BATCH, 5.0, 0, retention) == (MIN_BATCH, 0)  # the floor


def test_run_directories_and_rejected_adapters_files(engine: Engine, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    old = repo.start_run(engine, now=NOW - 60 * DAY, reason="x", status="running")
    repo.update_run(engine, old, status="failed", finished=NOW - 60 * DAY)
    fresh = repo.start_run(engine, now=NOW - DAY, reason="y", status="running")
    repo.update_run(engine, fresh, status="failed", finished=NOW - DAY)
    live = repo.start_run(engine, now=NOW - 90 * DAY, reason="z", status="running")
    for run_id in (old, fresh, live):
        (runs / str(run_id)).mkdir(parents=True)
        (runs / str(run_id) / "train.jsonl").write_text('{"text": "t"}\n')
    adapters = tmp_path / "adapters"
    for version, status in (("r" * 64, "rejected"), ("k" * 64, "retired")):
        (adapters / version).mkdir(parents=True)
        add_adapter(engine, version, status=status, path=adapters / version)
    outside = tmp_path / "imported"
    outside.mkdir()
    add_adapter(engine, "o" * 64, status="rejected", path=outside)

    settings = settings_for(tmp_path, str(engine.url))
    dry = by_table(prune(engine, settings, NOW, dry_run=True))
    assert dry["runs"].deleted == 1 and dry["rejected_adapters"].deleted == 1
    assert (runs / str(old)).is_dir()
    metrics = new_metrics()
    prune(engine, settings, NOW, metrics=metrics.retention, sleep=lambda s: None)
    assert sorted(p.name for p in runs.iterdir()) == sorted([str(fresh), str(live)])
    assert sorted(p.name for p in adapters.iterdir()) == ["k" * 64]
    assert outside.is_dir()  # never a directory adaptd did not store itself
    assert repo.get_adapter(engine, "r" * 64).status == "rejected"  # the history stays
    value = metrics.registry.get_sample_value
    assert value("adaptd_retention_deleted_rows_total", {"table": "runs"}) == 1
    assert value("adaptd_retention_deleted_rows_total", {"table": "rejected_adapters"}) == 1


def test_the_label_total_policies_wait_on_never_goes_down(engine: Engine, tmp_path: Path) -> None:
    # The retrain policies count an episode's labels as the difference of two totals.
    add_predictions(engine, 200, start=NOW - 150 * DAY, step=DAY)
    assert repo.count_labelled(engine) == 200
    settings = settings_for(tmp_path, str(engine.url), batch_size=100, feedback=30.0)
    prune(engine, settings, NOW, sleep=lambda s: None)
    assert count(engine, "feedback") == 80  # ages 150 .. -49 days: 120 past 30 days
    assert repo.count_labelled(engine) == 200
    add_predictions(engine, 5, start=NOW, step=DAY, prefix="new")
    assert repo.count_labelled(engine) == 205


@pytest.mark.postgres
def test_postgresql_cancels_a_batch_past_its_timeout_and_retries_it_smaller(
    pg_database: str,
) -> None:
    engine = make_engine(pg_database)
    migrate.upgrade(engine)
    add_predictions(engine, 300, start=NOW - 400 * DAY, step=timedelta(minutes=1))
    retention = RetentionSettings(batch_size=400, batch_timeout_s=0.2)
    cutoff = NOW - 90 * DAY
    tries: list[float] = []
    try:
        # Another transaction holds one old row locked: every batch that covers it waits on
        # the lock until the server cancels it.
        with engine.connect() as blocker:
            blocker.execute(
                select(t.predictions.c.seq).where(t.predictions.c.id == "p0").with_for_update()
            )
            with pytest.raises(TimeoutError, match="predictions"):
                prune_table(engine, "predictions", cutoff, retention, keep=[], sleep=tries.append)
            blocker.rollback()
        assert len(tries) == 2  # 400, 200, then 100 = MIN_BATCH gives up
        assert count(engine, "predictions") == 300  # every cancelled batch rolled back
        assert repo.count_labelled(engine) == 300  # and its counter bump with it
        deleted, _, _ = prune_table(engine, "predictions", cutoff, retention, keep=[])
        assert deleted == 300
        assert repo.count_labelled(engine) == 300  # deleted labelled pairs stay counted
    finally:
        engine.dispose()
