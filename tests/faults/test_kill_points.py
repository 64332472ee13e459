"""``kill -9`` at each step of retrain -> import -> promote -> swap -> probation, then a restart.

Each step is reached for real (tiny model, real child process, real SQLite, real HTTP) and the
process kills itself there through a failpoint (``ADAPTD_FAILPOINT``, :mod:`adaptd.failpoints`).
After the restart the daemon must serve the store's active version (the last one promoted, or
the one probation restored), leave no run ``running`` and no half-done probation.
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
import pytest
from bench.faults.daemon import Daemon, start, write_config
from sqlalchemy import Engine

from adaptd.modeling.tiny import build_tiny_model
from adaptd.storage import probations
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine
from adaptd.storage.records import FeedbackRecord, PredictionRecord
from tests.unit.adapters.builders import variant
from tests.unit.retraining.synthetic import keyword_examples

pytestmark = pytest.mark.slow
LABELS = ("negative", "positive")
KILLED = -signal.SIGKILL


@dataclass(frozen=True, slots=True)
class World:
    base: Path
    template: Path  # a work directory whose store holds one promoted adapter, v1
    v1: str


def cli(work: Path, *args: str, failpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"ADAPTD_CONFIG", "ADAPTD_FAILPOINT"}}
    if failpoint is not None:
        env["ADAPTD_FAILPOINT"] = failpoint
    return subprocess.run(
        [sys.executable, "-m", "adaptd", *args, "--config", str(work / "adaptd.yaml")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def write_rows(path: Path, seed: int, domain: str, n: int) -> None:
    rows = [{"text": e.text, "label": e.label} for e in keyword_examples(n, seed, domain=domain)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("faults")
    base = build_tiny_model(root / "tiny", hidden=32, layers=2)
    work = root / "template"
    work.mkdir()
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
            "epochs": 3,
            "learning_rate": 0.02,
            "min_labels": 20,
            "early_stopping_patience": None,
            "probation": {"min_samples": 30, "max_accuracy_drop": 0.02},
        },
        validation={
            "golden_size": 50,
            "gates": [{"metric": "accuracy", "slice": "recent", "min": 0}],
        },
    )
    write_rows(work / "first.jsonl", 0, "a", 600)
    write_rows(work / "second.jsonl", 3, "b", 400)
    (work / "state").mkdir()
    assert cli(work, "db", "upgrade").returncode == 0
    first = cli(work, "retrain", "--from-file", "first.jsonl", "--json")
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["status"] == "promoted", doc
    return World(base=base, template=work, v1=doc["candidate"])


@pytest.fixture
def work(world: World, tmp_path: Path) -> Path:
    """A copy of the template: its own store and state directory."""
    dest = tmp_path / "work"
    shutil.copytree(world.template, dest)
    config = dest / "adaptd.yaml"
    config.write_text(config.read_text().replace(str(world.template), str(dest)))
    return dest


def store(work: Path) -> Engine:
    return make_engine(f"sqlite:///{work / 'state' / 'adaptd.db'}")


def status(daemon: Daemon) -> dict[str, Any]:
    doc: dict[str, Any] = httpx.get(f"{daemon.url}/v1/status", timeout=30).json()
    return doc


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def assert_recovered(work: Path, daemon: Daemon) -> str:
    """The restarted daemon serves the store's active version and nothing is left running."""
    engine = store(work)
    try:
        active = repo.active_adapter(engine)
        assert active is not None
        wait_for(lambda: status(daemon)["adapter"]["serving"] == active.version)
        answer = httpx.post(f"{daemon.url}/v1/predict", json={"inputs": ["fine"]}, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["predictions"][0]["adapter"] == active.version
        assert httpx.get(f"{daemon.url}/readyz", timeout=30).status_code == 200
        assert [r for r in repo.list_runs(engine) if r.status == "running"] == []
        return active.version
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("point", "promoted"),
    [("retrain.trained", False), ("retrain.imported", False), ("retrain.promoted", True)],
)
def test_kill_during_a_retrain_then_restart(
    world: World, work: Path, point: str, promoted: bool
) -> None:
    killed = cli(work, "retrain", "--from-file", "second.jsonl", failpoint=point)
    assert killed.returncode == KILLED, killed.stderr
    engine = store(work)
    try:
        (run,) = [r for r in repo.list_runs(engine) if r.status == "running"]
    finally:
        engine.dispose()
    with start(work / "adaptd.yaml", work, work / "state", role="all") as daemon:
        serving = assert_recovered(work, daemon)
    engine = store(work)
    try:
        repaired = repo.get_run(engine, run.id)
        assert repaired.status == "interrupted" and "kill -9" in (repaired.error or "")
        candidates = [r for r in repo.list_adapters(engine) if r.version != world.v1]
        if point == "retrain.trained":
            assert candidates == [], "nothing was registered before the kill"
        if point == "retrain.imported":
            (candidate,) = candidates
            assert candidate.status == "rejected" and candidate.verdict
            assert candidate.verdict["interrupted"] is True
        if promoted:
            (candidate,) = candidates
            assert serving == candidate.version != world.v1, "the last promoted adapter"
            running = probations.running(engine)
            assert running is not None and running.version == serving
        else:
            assert serving == world.v1
        assert not list((work / "state" / "adapters").glob(".tmp-*"))
    finally:
        engine.dispose()


def test_kill_between_build_and_swap_then_probation_rollback(world: World, work: Path) -> None:
    """swap: the daemon dies having built the promoted version; probation: it dies having rolled
    back in the registry but not ended its probation. Each restart recovers."""
    v2_dir = variant(Path(work / "state" / "adapters" / world.v1), work / "v2-src", "v2")
    imported = cli(work, "adapters", "import", str(v2_dir), "--json")
    assert imported.returncode == 0, imported.stderr
    v2 = json.loads(imported.stdout)["version"]
    config, state = work / "adaptd.yaml", work / "state"

    with start(config, work, state, env={"ADAPTD_FAILPOINT": "swap.built"}) as daemon:
        assert status(daemon)["adapter"]["serving"] == world.v1
        assert cli(work, "adapters", "promote", v2).returncode == 0
        assert daemon.proc.wait(timeout=120) == KILLED
    with start(config, work, state) as daemon:
        assert assert_recovered(work, daemon) == v2

    # v2 is on probation (the CLI promotion started it); its traffic is far worse than v1's.
    engine = store(work)
    try:
        running = probations.running(engine)
        assert running is not None and running.version == v2
        labelled_traffic(engine, world.v1, 200, wrong_every=10, start=running.started)
        labelled_traffic(engine, v2, 200, wrong_every=2, start=running.started)
    finally:
        engine.dispose()
    run_until_killed(work, "probation.rolled_back", role="all")
    engine = store(work)
    try:
        active = repo.active_adapter(engine)
        assert active is not None and active.version == world.v1, "rolled back before the kill"
        assert probations.running(engine) is not None, "its probation was not ended yet"
    finally:
        engine.dispose()
    with start(config, work, state, role="all") as daemon:
        assert assert_recovered(work, daemon) == world.v1
        wait_for(lambda: status(daemon)["control"]["probation"] is None)
    engine = store(work)
    try:
        (last, *_) = probations.history(engine)
        assert last.version == v2 and last.status == "superseded"
        rollbacks = [e for e in repo.list_events(engine) if e.kind == "rolled_back"]
        assert len(rollbacks) == 1, "the restart did not roll back a second time"
    finally:
        engine.dispose()


def run_until_killed(work: Path, failpoint: str, *, role: str) -> None:
    """Start a daemon that reaches ``failpoint`` (before or after READY) and wait for its end."""
    env = {"ADAPTD_FAILPOINT": failpoint}
    try:
        with start(work / "adaptd.yaml", work, work / "state", role=role, env=env) as daemon:
            assert daemon.proc.wait(timeout=120) == KILLED
    except RuntimeError as e:  # killed before it was ready: a check on start got there first
        assert f"exit {KILLED}" in str(e), e


def labelled_traffic(
    engine: Engine, adapter: str, n: int, *, wrong_every: int, start: datetime
) -> None:
    """``n`` served predictions of ``adapter`` and their feedback, one in ``wrong_every`` wrong;
    the older adapter's before ``start``, the newer one's after."""
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
