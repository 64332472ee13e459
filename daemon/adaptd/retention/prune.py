"""One retention pass: delete what is older than its ``retention.*`` age, in short batches.

Store tables go in batches of at most ``retention.batch_size`` rows, each its own transaction
over one primary-key range, with a short pause between them: SQLite has a single writer and the
prediction log must get the lock between two batches. A batch that held the lock longer than
``retention.max_batch_s`` halves the next one, so a slow disk or a busy PostgreSQL shortens the
lock instead of stretching it. Files (failed runs' directories, rejected adapters' files) go
after the store. The dry run counts the same rows without deleting any.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from adaptd.config import Settings
from adaptd.retention.keep import kept_predictions
from adaptd.retention.metrics import RetentionMetrics
from adaptd.retention.settings import STORE_TABLES, RetentionSettings
from adaptd.storage import repository as repo
from adaptd.storage.repository import KeepRule

logger = logging.getLogger(__name__)

#: between two batches: long enough for a waiting writer to take the lock (SQLite hands it
#: over within a millisecond), short enough that a million rows still go in minutes
PAUSE_S = 0.01
#: the smallest batch the halving goes down to
MIN_BATCH = 100
#: fast batches in a row (each under half of ``retention.max_batch_s``) after which the size
#: doubles back towards ``retention.batch_size``: one stall on a starved box otherwise left a
#: PostgreSQL pass at a few hundred rows a batch for good (10,301 batches, 766 s for 1.2M rows)
GROW_AFTER = 8
#: run directories whose run may still write them
_LIVE_RUNS = frozenset({"queued", "running"})
#: adapter versions whose files retention.rejected_adapters removes
_REJECTED = frozenset({"rejected", "failed"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Pruned:
    """What a pass did (or, in a dry run, would do) to one table or kind of file."""

    table: str
    age_days: float | None
    cutoff: datetime | None
    deleted: int = 0
    batches: int = 0
    max_batch_s: float = 0.0


def cutoff_of(age_days: float | None, now: datetime) -> datetime | None:
    return None if age_days is None else now - timedelta(days=age_days)


def prune_table(
    engine: Engine,
    table: str,
    cutoff: datetime,
    retention: RetentionSettings,
    *,
    keep: list[KeepRule],
    on_batch: Callable[[int, float], None] = lambda n, s: None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[int, int, float]:
    """Delete ``table``'s expired rows batch by batch; returns rows, batches, longest batch."""
    size = retention.batch_size
    deleted = batches = fast = 0
    longest = 0.0
    while True:
        try:
            n, held = repo.delete_expired_batch(
                engine, table, cutoff, limit=size, keep=keep, timeout_s=retention.batch_timeout_s
            )
        except TimeoutError:
            # Cancelled and rolled back by the server: nothing deleted, retry at half the size.
            if size <= MIN_BATCH:
                raise
            size, fast = max(MIN_BATCH, size // 2), 0
            logger.info("retention: a %s batch was cancelled; next batches of %d", table, size)
            sleep(PAUSE_S)
            continue
        if n == 0:
            return deleted, batches, longest
        deleted, batches, longest = deleted + n, batches + 1, max(longest, held)
        on_batch(n, held)
        size, fast = next_size(size, held, fast, retention)
        sleep(PAUSE_S)


def next_size(size: int, held: float, fast: int, retention: RetentionSettings) -> tuple[int, int]:
    """The next batch size and the run of fast batches, after a batch of ``size`` rows held the
    lock ``held`` seconds with ``fast`` fast batches before it: halved after a slow one, doubled
    (up to ``retention.batch_size``) after :data:`GROW_AFTER` fast ones in a row. A batch twice
    the size of one under half the budget should stay within it."""
    if held > retention.max_batch_s:
        if size > MIN_BATCH:
            logger.info("retention: a batch held %.2f s; next batches of %d", held, size // 2)
        return max(MIN_BATCH, size // 2), 0
    if held >= retention.max_batch_s / 2:
        return size, 0
    fast += 1
    if fast >= GROW_AFTER and size < retention.batch_size:
        return min(retention.batch_size, size * 2), 0
    return size, fast


def prune(
    engine: Engine,
    settings: Settings,
    now: datetime,
    *,
    dry_run: bool = False,
    metrics: RetentionMetrics | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Pruned]:
    """One pass over every table and kind of file with an age; never raises for one table
    failing (it is logged and the others still run)."""
    retention = settings.retention
    keep = kept_predictions(engine, settings, now)
    out: list[Pruned] = []
    for table in STORE_TABLES:
        age = retention.age_days(table)
        cutoff = cutoff_of(age, now)
        if cutoff is None:
            out.append(Pruned(table=table, age_days=age, cutoff=None))
            continue
        if dry_run:
            count = repo.count_expired(engine, table, cutoff, keep=keep)
            out.append(Pruned(table=table, age_days=age, cutoff=cutoff, deleted=count))
            continue

        def counted(n: int, _held: float, table: str = table) -> None:
            if metrics is not None:
                metrics.deleted.labels(table=table).inc(n)

        try:
            deleted, batches, longest = prune_table(
                engine, table, cutoff, retention, keep=keep, on_batch=counted, sleep=sleep
            )
        except Exception:
            logger.exception("retention: pruning %s failed", table)
            continue
        out.append(
            Pruned(
                table=table, age_days=age, cutoff=cutoff, deleted=deleted, batches=batches,
                max_batch_s=longest,
            )
        )  # fmt: skip
    out.append(_prune_runs(engine, settings, now, dry_run=dry_run))
    out.append(_prune_rejected(engine, settings, now, dry_run=dry_run))
    if metrics is not None and not dry_run:
        for item in out[-2:]:
            metrics.deleted.labels(table=item.table).inc(item.deleted)
        metrics.max_batch.set(max((p.max_batch_s for p in out), default=0.0))
    if any(p.deleted for p in out):
        verb = "would delete" if dry_run else "deleted"
        logger.info(
            "retention: %s %s",
            verb,
            ", ".join(f"{p.deleted} {p.table}" for p in out if p.deleted),
        )
    return out


def _prune_runs(engine: Engine, settings: Settings, now: datetime, *, dry_run: bool) -> Pruned:
    """Directories of runs that ended before the cutoff (a successful run removes its own)."""
    age = settings.retention.runs
    cutoff = cutoff_of(age, now)
    runs_dir = settings.state_dir / "runs"
    if cutoff is None or not runs_dir.is_dir():
        return Pruned(table="runs", age_days=age, cutoff=cutoff)
    dirs = {int(d.name): d for d in runs_dir.iterdir() if d.is_dir() and d.name.isdigit()}
    runs = repo.retrain_runs_by_id(engine, dirs)
    doomed = []
    for run_id, path in sorted(dirs.items()):
        run = runs.get(run_id)
        if run is not None and run.status in _LIVE_RUNS:
            continue
        # A directory without a run row (another store, a wiped database) ages by its files.
        ended = (
            (run.finished or run.started)
            if run is not None
            else datetime.fromtimestamp(path.stat().st_mtime, UTC)
        )
        if ended < cutoff:
            doomed.append(path)
    if not dry_run:
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
    return Pruned(table="runs", age_days=age, cutoff=cutoff, deleted=len(doomed))


def _prune_rejected(engine: Engine, settings: Settings, now: datetime, *, dry_run: bool) -> Pruned:
    """Files of versions rejected (or failed) before the cutoff; their registry rows stay."""
    age = settings.retention.rejected_adapters
    cutoff = cutoff_of(age, now)
    if cutoff is None:
        return Pruned(table="rejected_adapters", age_days=age, cutoff=None)
    root = settings.adapters_dir.resolve()
    doomed = []
    for record in repo.list_adapters(engine):
        path = Path(record.path).resolve()
        # Only what adaptd stored itself: never a directory an operator imported from elsewhere.
        if record.status in _REJECTED and record.created < cutoff and path.is_dir():
            if path.parent == root:
                doomed.append(path)
    if not dry_run:
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)
    return Pruned(table="rejected_adapters", age_days=age, cutoff=cutoff, deleted=len(doomed))
