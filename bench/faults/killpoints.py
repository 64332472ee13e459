"""``kill -9`` at each step of retrain -> import -> promote -> swap -> probation, then a restart.

Each step is reached for real (a tiny model trained by a real child process, SQLite, HTTP) and
the process kills itself there through a failpoint (``ADAPTD_FAILPOINT``,
:mod:`adaptd.failpoints`). After the restart the daemon must serve the store's active version
(the last one promoted, or the one probation restored) and leave no run ``running``.
``tests/faults/test_kill_points.py`` asserts the details on these same steps.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine

from bench.faults.daemon import LABELS, Daemon, start, write_config

KILLED = -signal.SIGKILL
#: the kill points a retrain from the CLI reaches, in order
RETRAIN_POINTS = ("retrain.trained", "retrain.imported", "retrain.promoted")


@dataclass(frozen=True, slots=True)
class World:
    base: Path
    template: Path  # a work directory whose store holds one promoted adapter, v1
    v1: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KillPointResult:
    point: str
    killed: bool
    #: the version the store says is active after the restart, and the one served
    active: str
    serving: str
    #: runs still ``running`` after the restart
    running_runs: int
    #: what became of the killed run (None: the point is outside a run)
    run_status: str | None
    restart_s: float


def cli(work: Path, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """``adaptd ARGS --config work/adaptd.yaml`` in its own interpreter."""
    env = {k: v for k, v in os.environ.items() if k not in {"ADAPTD_CONFIG", "ADAPTD_FAILPOINT"}}
    if failpoint is not None:
        env["ADAPTD_FAILPOINT"] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "adaptd", *args, "--config", str(work / "adaptd.yaml")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def make_world(root: Path) -> World:
    """A tiny base model and a store whose first adapter was trained by ``adaptd retrain``."""
    from adaptd.modeling.tiny import build_tiny_model

    base = build_tiny_model(root / "tiny", hidden=32, layers=2)
    work = root / "template"
    (work / "state").mkdir(parents=True)
    write_config(
        work,
        base,
        work / "state",
        serving={"registry_poll_s": 0.2, "log_flush_ms": 50},
        scheduler={"check_interval_s": 1, "check_on_start": True},
        # The gates and the recipe are not under test here: a linear probe trains in seconds
        # and a permissive gate lets the second run reach its promotion.
        retraining={
            "mode": "features",
            "min_labels": 20,
            "probation": {"min_samples": 30, "max_accuracy_drop": 0.02},
        },
        validation={
            "golden_size": 50,
            "gates": [{"metric": "accuracy", "slice": "recent", "min": 0}],
        },
    )
    _write_rows(work / "first.jsonl", seed=0, n=600)
    _write_rows(work / "second.jsonl", seed=3, n=400)
    upgraded = cli(work, "db", "upgrade")
    if upgraded.returncode != 0:
        raise RuntimeError(upgraded.stderr)
    first = cli(work, "retrain", "--from-file", "first.jsonl", "--json")
    if first.returncode != 0:
        raise RuntimeError(first.stderr)
    doc = json.loads(first.stdout)
    if doc["status"] != "promoted":
        raise RuntimeError(f"the first adapter was not promoted: {doc}")
    return World(base=base, template=work, v1=doc["candidate"])


def _write_rows(path: Path, *, seed: int, n: int) -> None:
    """Labelled snippets whose label follows a sentiment word (learnable by a tiny model)."""
    import random

    rng = random.Random(seed)
    words = {"positive": ("great", "lovely", "superb"), "negative": ("awful", "dull", "bad")}
    filler = ("the", "film", "was", "quite", "really", "plot", "acting", "today", "and")
    rows = []
    for _ in range(n):
        label = rng.choice(LABELS)
        text = [rng.choice(filler) for _ in range(rng.randrange(3, 9))]
        text.insert(rng.randrange(len(text) + 1), rng.choice(words[label]))
        rows.append({"text": " ".join(text), "label": label})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def copy_work(world: World, dest: Path) -> Path:
    """A copy of the template: its own store and state directory."""
    shutil.copytree(world.template, dest)
    config = dest / "adaptd.yaml"
    config.write_text(config.read_text().replace(str(world.template), str(dest)))
    return dest


def store(work: Path) -> Engine:
    from adaptd.storage.engine import make_engine

    return make_engine(f"sqlite:///{work / 'state' / 'adaptd.db'}")


def status(daemon: Daemon) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{daemon.url}/v1/status", timeout=30).json()
    return doc


def wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.1)


def run_until_killed(work: Path, failpoint: str, *, role: str) -> bool:
    """Start a daemon that reaches ``failpoint`` (before or after READY); True if it was
    killed there."""
    env = {"ADAPTD_FAILPOINT": failpoint}
    try:
        with start(work / "adaptd.yaml", work, work / "state", role=role, env=env) as daemon:
            return daemon.proc.wait(timeout=300) == KILLED
    except RuntimeError as e:  # killed before it was ready: a check on start got there first
        return f"exit {KILLED}" in str(e)


def restart(
    work: Path,
    *,
    role: str = "all",
    killed_run: int | None = None,
    until: Callable[[Engine], bool] | None = None,
) -> KillPointResult:
    """Start the daemon again on ``work`` and see what it serves and what it repaired; with
    ``until``, keep it running until that holds of the store."""
    from adaptd.storage import repository as repo

    started = time.monotonic()
    with start(work / "adaptd.yaml", work, work / "state", role=role) as daemon:
        engine = store(work)
        try:
            active = repo.active_adapter(engine)
            assert active is not None
            wait_for(lambda: status(daemon)["adapter"]["serving"] == active.version)
            restart_s = time.monotonic() - started
            if until is not None:
                wait_for(lambda: until(engine))
            answer = httpx.post(f"{daemon.url}/v1/predict", json={"inputs": ["fine"]}, timeout=30)
            serving = answer.json()["predictions"][0]["adapter"] if answer.is_success else ""
            runs = repo.list_runs(engine)
            return KillPointResult(
                point="",
                killed=True,
                active=active.version,
                serving=serving,
                running_runs=sum(1 for r in runs if r.status == "running"),
                run_status=next((r.status for r in runs if r.id == killed_run), None),
                restart_s=restart_s,
            )
        finally:
            engine.dispose()


def retrain_point(world: World, work: Path, point: str) -> tuple[KillPointResult, int]:
    """``adaptd retrain`` killed at ``point``, then a restart; also returns the run's id."""
    from adaptd.storage import repository as repo

    killed = cli(work, "retrain", "--from-file", "second.jsonl", failpoint=point)
    engine = store(work)
    try:
        runs = [r.id for r in repo.list_runs(engine) if r.status == "running"]
    finally:
        engine.dispose()
    run = runs[0] if runs else -1
    result = restart(work, killed_run=run)
    return _named(result, point, killed.returncode == KILLED), run


def swap_point(world: World, work: Path) -> tuple[KillPointResult, str]:
    """A serving daemon killed after building a version the CLI promoted, then a restart."""
    v2_dir = _variant(work / "state" / "adapters" / world.v1, work / "v2-src")
    imported = cli(work, "adapters", "import", str(v2_dir), "--json")
    v2 = str(json.loads(imported.stdout)["version"])
    config, state = work / "adaptd.yaml", work / "state"
    with start(config, work, state, env={"ADAPTD_FAILPOINT": "swap.built"}) as daemon:
        wait_for(lambda: status(daemon)["adapter"]["serving"] == world.v1)
        cli(work, "adapters", "promote", v2)
        killed = daemon.proc.wait(timeout=300) == KILLED
    return _named(restart(work, role="serve"), "swap.built", killed), v2


def probation_point(world: World, work: Path, v2: str) -> KillPointResult:
    """After :func:`swap_point`: v2's probation sees far worse labels than v1's, rolls back in
    the registry, and the daemon is killed before it ends its probation; then a restart."""
    from adaptd.storage import probations

    engine = store(work)
    try:
        running = probations.running(engine)
        assert running is not None and running.version == v2
        labelled_traffic(engine, world.v1, 200, wrong_every=10, start=running.started)
        labelled_traffic(engine, v2, 200, wrong_every=2, start=running.started)
    finally:
        engine.dispose()
    killed = run_until_killed(work, "probation.rolled_back", role="all")
    # The restarted control loop ends the probation cut short at its first check.
    ended = restart(work, until=lambda e: probations.running(e) is None)
    return _named(ended, "probation.rolled_back", killed)


def _named(result: KillPointResult, point: str, killed: bool) -> KillPointResult:
    return KillPointResult(
        point=point,
        killed=killed,
        active=result.active,
        serving=result.serving,
        running_runs=result.running_runs,
        run_status=result.run_status,
        restart_s=result.restart_s,
    )


def _variant(src: Path, out: Path) -> Path:
    """The same weights with different metadata: a distinct version."""
    shutil.copytree(src, out)
    meta_path = out / "adaptd.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"labels": list(LABELS)}
    meta["variant"] = "v2"
    meta_path.write_text(json.dumps(meta, sort_keys=True))
    return out


def labelled_traffic(
    engine: Engine, adapter: str, n: int, *, wrong_every: int, start: datetime
) -> None:
    """``n`` served predictions of ``adapter`` and their feedback, one in ``wrong_every`` wrong;
    stamped an hour before ``start`` when that is in the future, else now."""
    from adaptd.storage import repository as repo
    from adaptd.storage.records import FeedbackRecord, PredictionRecord

    now = datetime.now(UTC)
    preds = [
        PredictionRecord(
            id=f"{adapter[:8]}-{i}",
            ts=(start - timedelta(hours=1) if now < start else now) + timedelta(milliseconds=i),
            adapter=adapter,
            text=f"text {i}",
            text_hash=str(i),
            label=LABELS[(i + (i % wrong_every == 0)) % 2],
            score=0.9,
            probabilities={"negative": 0.5, "positive": 0.5},
        )
        for i in range(n)
    ]
    repo.insert_predictions(engine, preds)
    with engine.begin() as conn:
        repo.upsert_feedback(
            conn,
            [
                FeedbackRecord(prediction_id=p.id, label=LABELS[i % 2], ts=p.ts)
                for i, p in enumerate(preds)
            ],
        )
