"""``adaptd data prune|forget`` as an operator runs them: a table, JSON, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptd.cli import app
from adaptd.storage import migrate
from adaptd.storage.engine import make_engine
from tests.unit.retention.builders import add_predictions, count


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config file, a migrated SQLite store and 20 predictions, the oldest 10 expired."""
    (tmp_path / "state").mkdir()
    (tmp_path / "adaptd.yaml").write_text("state_dir: state\nretention:\n  predictions: 30\n")
    engine = make_engine(f"sqlite:///{tmp_path / 'state' / 'adaptd.db'}")
    migrate.upgrade(engine)
    start = datetime.now(UTC) - timedelta(days=39.5)  # ages 39.5 .. 20.5 days
    add_predictions(engine, 20, start=start, step=timedelta(days=1), with_feedback=False)
    engine.dispose()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADAPTD_CONFIG", raising=False)
    return tmp_path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ADAPTD_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "adaptd", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=120, check=False,
    )  # fmt: skip


def stored(workdir: Path) -> int:
    engine = make_engine(f"sqlite:///{workdir / 'state' / 'adaptd.db'}")
    try:
        return count(engine, "predictions")
    finally:
        engine.dispose()


def test_prune_dry_run_prints_a_table_then_prune_deletes(workdir: Path) -> None:
    dry = CliRunner().invoke(app, ["data", "prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    lines = dry.stdout.splitlines()
    assert lines[0].split()[:3] == ["table", "keep", "(days)"] and "would delete" in lines[0]
    predictions = next(line.split() for line in lines if line.startswith("predictions"))
    assert predictions[1] == "30" and predictions[3] == "10"
    assert any(line.split()[:2] == ["runs", "30"] for line in lines)
    assert stored(workdir) == 20

    done = CliRunner().invoke(app, ["data", "prune", "--json"])
    assert done.exit_code == 0, done.output
    tables = {p["table"]: p for p in json.loads(done.stdout)["tables"]}
    assert tables["predictions"]["deleted"] == 10 and tables["predictions"]["batches"] == 1
    assert tables["events"]["age_days"] == 365
    assert stored(workdir) == 10


def test_forget_errors_are_one_line(workdir: Path) -> None:
    unknown = run_cli("data", "forget", "--id", "nobody", cwd=workdir)
    assert unknown.returncode == 1
    assert (
        unknown.stderr.strip() == "adaptd: error: unknown prediction id 'nobody': nothing deleted"
    )
    neither = run_cli("data", "forget", cwd=workdir)
    assert neither.returncode == 2 and "--id ID" in neither.stderr
    bad = run_cli("data", "forget", "--attribute", "group", cwd=workdir)
    assert bad.returncode == 2 and "expected KEY=VALUE" in bad.stderr
    assert stored(workdir) == 20


def test_forget_prints_what_went(workdir: Path) -> None:
    result = CliRunner().invoke(app, ["data", "forget", "--attribute", "group=a", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "forget attribute group=a: would delete" in result.stdout
    assert "predictions      10" in result.stdout  # the odd ones carry group a
    assert "no adapter version was trained on them" in result.stdout
    assert stored(workdir) == 20
    done = CliRunner().invoke(app, ["data", "forget", "--id", "p3", "--retrain", "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["deleted"]["predictions"] == 1 and report["queued_run"] == 1
    assert stored(workdir) == 19
