"""Startup repair: what a crash, a ``kill -9`` or a power loss left half done, put right once
when the control part starts (before the scheduler can start a new run).

- Runs still ``running`` in the store are ``interrupted``, with the reason: no process of this
  control role runs them any more. (A retrain started by ``adaptd retrain`` on the CLI may be
  alive; the store-level retrain lock decides that: run :func:`repair` only while holding it.)
- Candidates those runs registered but never judged are ``rejected`` as interrupted, so nobody
  promotes an adapter that never passed validation by mistake.
- ``.tmp-*`` and ``.trash-*`` directories in the adapters directory (a copy cut short) older than
  ``retraining.tmp_max_age_s``, and run directories (their spec, progress, stderr and the raw
  training texts) older than ``retraining.run_dir_max_age_s`` are removed.

:func:`plan_removals` is pure (names, ages, the limits); :func:`repair` does the I/O.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from adaptd.storage import repository as repo
from adaptd.storage.records import Event

logger = logging.getLogger(__name__)

SOURCE = "repair"
#: run statuses that mean "a process is working on it"
UNFINISHED = frozenset({"queued", "running"})
#: prefixes of the adapters directory's temporary entries (adaptd.adapters.files)
TEMPORARY = (".tmp-", ".trash-")


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """A directory found under the state directory, with its age."""

    path: Path
    kind: str  # "tmp" | "run"
    age_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RepairReport:
    interrupted_runs: tuple[int, ...] = ()
    rejected_candidates: tuple[str, ...] = ()
    removed: tuple[Path, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "interrupted_runs": list(self.interrupted_runs),
            "rejected_candidates": list(self.rejected_candidates),
            "removed": [str(p) for p in self.removed],
        }


def plan_removals(
    entries: Iterable[Entry],
    *,
    keep_runs: Iterable[str],
    tmp_max_age_s: float,
    run_max_age_s: float,
) -> list[Path]:
    """The entries old enough to go; run directories named in ``keep_runs`` always stay."""
    keep = set(keep_runs)
    out = []
    for e in entries:
        if e.kind == "tmp" and e.age_s > tmp_max_age_s:
            out.append(e.path)
        elif e.kind == "run" and e.age_s > run_max_age_s and e.path.name not in keep:
            out.append(e.path)
    return out


def scan(adapters_dir: Path, runs_dir: Path, *, now_s: float) -> list[Entry]:
    """The temporary and run directories, aged by their modification time."""
    entries = []
    for directory, kind in ((adapters_dir, "tmp"), (runs_dir, "run")):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if kind == "tmp" and not path.name.startswith(TEMPORARY):
                continue
            try:
                age = now_s - path.lstat().st_mtime
            except OSError:  # removed meanwhile
                continue
            if path.is_dir():
                entries.append(Entry(path=path, kind=kind, age_s=age))
    return entries


def repair(
    engine: Engine,
    *,
    state_dir: Path,
    adapters_dir: Path,
    now: datetime,
    tmp_max_age_s: float,
    run_max_age_s: float,
    now_s: float | None = None,
) -> RepairReport:
    """Repair the store and the state directory; returns what was done (also written as events
    and logged)."""
    runs = [r for r in repo.list_runs(engine, limit=10_000) if r.status in UNFINISHED]
    events: list[Event] = []
    interrupted = []
    for run in runs:
        reason = (
            f"interrupted: the process running it stopped (crash, kill -9 or power loss) after "
            f"it started at {run.started.isoformat()}; found by the startup repair"
        )
        repo.update_run(engine, run.id, status="interrupted", finished=now, error=reason)
        interrupted.append(run.id)
        events.append(
            Event(
                ts=now,
                kind="retrain_interrupted",
                source=SOURCE,
                message=f"retrain {run.id} {reason}",
                details={"run": run.id},
            )
        )
    rejected = _reject_unjudged(engine, set(interrupted), now)
    if events:
        repo.add_events(engine, events)
    entries = scan(adapters_dir, state_dir / "runs", now_s=time.time() if now_s is None else now_s)
    # Another process may be working on a run now (the CLI): its directory is never removed.
    busy = {str(r.id) for r in repo.list_runs(engine, limit=10_000) if r.status in UNFINISHED}
    removed = []
    for path in plan_removals(
        entries, keep_runs=busy, tmp_max_age_s=tmp_max_age_s, run_max_age_s=run_max_age_s
    ):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    report = RepairReport(
        interrupted_runs=tuple(interrupted),
        rejected_candidates=tuple(rejected),
        removed=tuple(removed),
    )
    if interrupted or rejected or removed:
        logger.warning(
            "startup repair: %d interrupted run(s), %d unjudged candidate(s) rejected, "
            "%d leftover directorie(s) removed",
            len(interrupted),
            len(rejected),
            len(removed),
        )
    return report


def _reject_unjudged(engine: Engine, interrupted: set[int], now: datetime) -> Sequence[str]:
    """Candidates of the interrupted runs that never got a verdict."""
    if not interrupted:
        return []
    registry = importlib.import_module("adaptd.adapters.registry")
    out = []
    for record in repo.list_adapters(engine):
        run = (record.config or {}).get("run")
        if record.status != "candidate" or record.verdict is not None or run not in interrupted:
            continue
        registry.reject(
            engine,
            record.version,
            now,
            verdict={"passed": False, "interrupted": True, "run": run},
            reason=f"retrain {run} was interrupted before validating it",
            source=SOURCE,
        )
        out.append(record.version)
    return out
