"""Startup repair on a real store and state directory: what a crash left half done."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from adaptd.retraining.repair import Entry, plan_removals, repair
from adaptd.storage import repository as repo
from adaptd.storage.records import AdapterRecord

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR = 3600.0


def aged(path: Path, age_s: float, now_s: float) -> Path:
    path.mkdir(parents=True)
    (path / "f").write_text("x")
    os.utime(path, (now_s - age_s, now_s - age_s))
    return path


def test_plan_removes_only_what_is_old_enough_and_not_busy() -> None:
    entries = [
        Entry(path=Path("a/.tmp-young"), kind="tmp", age_s=60),
        Entry(path=Path("a/.tmp-old"), kind="tmp", age_s=2 * HOUR),
        Entry(path=Path("runs/3"), kind="run", age_s=10 * 86400),
        Entry(path=Path("runs/4"), kind="run", age_s=10 * 86400),
        Entry(path=Path("runs/5"), kind="run", age_s=HOUR),
    ]
    plan = plan_removals(entries, keep_runs={"4"}, tmp_max_age_s=HOUR, run_max_age_s=7 * 86400)
    assert plan == [Path("a/.tmp-old"), Path("runs/3")]


def test_interrupted_runs_unjudged_candidates_and_leftovers(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    state = tmp_path / "state"
    adapters = state / "adapters"
    done = repo.start_run(engine, now=T0, reason="earlier")
    repo.update_run(engine, done, status="promoted", finished=T0)
    crashed = repo.start_run(engine, now=T0 + timedelta(hours=1), reason="drift")

    def candidate(version: str, run: int | None, verdict: dict[str, object] | None) -> None:
        repo.add_adapter(
            engine,
            AdapterRecord(
                version=version,
                status="candidate",
                path=str(adapters / version),
                created=T0,
                config={"run": run} if run is not None else {},
                verdict=verdict,
            ),
        )

    candidate("a" * 64, crashed, None)  # registered, then the crash: never judged
    candidate("b" * 64, crashed, {"passed": True})  # judged; waits for approval
    candidate("c" * 64, None, None)  # imported by an operator: not the repair's business
    now_s = 2_000_000_000.0
    old_tmp = aged(adapters / ".tmp-aaaaaaaaaaaa-1234", 2 * HOUR, now_s)
    young_tmp = aged(adapters / ".tmp-bbbbbbbbbbbb-5678", 60, now_s)
    kept_version = aged(adapters / ("d" * 64), 30 * 86400, now_s)
    old_run = aged(state / "runs" / str(done), 8 * 86400, now_s)
    young_run = aged(state / "runs" / str(crashed), HOUR, now_s)

    report = repair(
        engine,
        state_dir=state,
        adapters_dir=adapters,
        now=T0 + timedelta(hours=2),
        tmp_max_age_s=HOUR,
        run_max_age_s=7 * 86400,
        now_s=now_s,
    )

    assert report.interrupted_runs == (crashed,)
    run = repo.get_run(engine, crashed)
    assert run.status == "interrupted" and run.finished == T0 + timedelta(hours=2)
    assert run.error is not None and "interrupted" in run.error and "kill -9" in run.error
    assert repo.get_run(engine, done).status == "promoted"
    assert report.rejected_candidates == ("a" * 64,)
    statuses = {r.version[0]: r.status for r in repo.list_adapters(engine)}
    assert statuses == {"a": "rejected", "b": "candidate", "c": "candidate"}
    assert set(report.removed) == {old_tmp, old_run}
    assert not old_tmp.exists() and not old_run.exists()
    assert young_tmp.exists() and young_run.exists() and kept_version.exists()
    kinds = [e.kind for e in repo.list_events(engine)]
    assert "retrain_interrupted" in kinds and "rejected" in kinds

    again = repair(
        engine,
        state_dir=state,
        adapters_dir=adapters,
        now=T0 + timedelta(hours=3),
        tmp_max_age_s=HOUR,
        run_max_age_s=7 * 86400,
        now_s=now_s,
    )
    assert again.as_dict() == {"interrupted_runs": [], "rejected_candidates": [], "removed": []}
