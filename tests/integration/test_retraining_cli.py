"""``adaptd retrain`` as an operator meets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adaptd.cli import app, retrain_cmd
from adaptd.modeling.tiny import build_tiny_model
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine
from tests.unit.retraining.synthetic import keyword_examples


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    base = build_tiny_model(tmp_path / "tiny", hidden=32, layers=2)
    (tmp_path / "adaptd.yaml").write_text(
        f"""
state_dir: state
model:
  base: {base}
  max_length: 32
retraining:
  epochs: 4
  learning_rate: 0.02
  min_labels: 20
  early_stopping_patience: null
validation:
  golden_size: 50
"""
    )
    rows = [{"text": e.text, "label": e.label} for e in keyword_examples(600)]
    (tmp_path / "first.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return tmp_path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ADAPTD_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "adaptd", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bad_files_are_one_line_usage_errors(workdir: Path) -> None:
    missing = run_cli("retrain", "--from-file", "nope.csv", cwd=workdir)
    assert missing.returncode == 2
    assert (
        missing.stderr.strip().splitlines()
        == [f"adaptd: error: {workdir / 'nope.csv'}: file not found"]
        or "nope.csv: file not found" in missing.stderr
    )
    (workdir / "bad.csv").write_text("text,label\nhello,neutral\n")
    bad = run_cli("retrain", "--from-file", "bad.csv", cwd=workdir)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "bad.csv: row 1: label 'neutral' is not one of ['negative', 'positive']" in bad.stderr
    (workdir / "one.csv").write_text("text,label\ngood\t,positive\nfine,positive\n")
    one = run_cli("retrain", "--from-file", "one.csv", cwd=workdir)
    assert one.returncode == 2 and "Traceback" not in one.stderr
    assert "one.csv: every row is labelled 'positive' (2 rows)" in one.stderr
    assert "at least two of ['negative', 'positive']" in one.stderr
    assert not (workdir / "state" / "runs").exists()  # no run was started


def test_first_adapter_from_a_file(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "state").mkdir()
    engine = make_engine(f"sqlite:///{workdir / 'state' / 'adaptd.db'}")
    migrate.upgrade(engine)

    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(
        app, ["retrain", "--from-file", "first.jsonl", "--reason", "bootstrap", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "promoted"
    # no champion: each slice beat the majority class, the lower end of its interval above it
    assert doc["reason"].startswith("passed: beats_majority@recent passed: 0.")
    assert "beats_majority@golden passed" in doc["reason"] and "majority 0." in doc["reason"]
    # The real registry holds it: its files under state/adapters, the verdict stored with it.
    active = repo.active_adapter(engine)
    assert active is not None and active.version == doc["candidate"]
    assert Path(active.path).parent == workdir / "state" / "adapters"
    assert active.verdict and active.verdict["passed"] and active.config
    assert active.config["run"] == doc["run"]
    kinds = [e.kind for e in repo.list_events(engine)]
    assert {"adapter_imported", "promoted", "retrain_promoted"} <= set(kinds)
    run = repo.get_run(engine, doc["run"])
    assert run.reason == "bootstrap (file first.jsonl)"

    human = CliRunner().invoke(app, ["retrain", "--reason", "again"])
    # The store has no feedback: a clear failure, exit 1, the adapter still active.
    assert human.exit_code == 1
    assert "failed: unusable training data: only 0 labelled examples" in human.stdout
    assert repo.active_adapter(engine) == active
    engine.dispose()


def test_base_info_reads_the_config(workdir: Path) -> None:
    from adaptd.config import load_settings

    info = retrain_cmd.base_info(load_settings(workdir / "adaptd.yaml"))
    assert info.model_type == "bert" and not info.is_decoder
    assert info.labels == ("negative", "positive")


def test_a_retrain_is_refused_while_another_process_holds_the_retrain_lock(
    workdir: Path,
) -> None:
    from datetime import UTC, datetime

    from adaptd.storage.locks import retrain_lock

    (workdir / "state").mkdir()
    engine = make_engine(f"sqlite:///{workdir / 'state' / 'adaptd.db'}")
    migrate.upgrade(engine)
    # Held as a daemon's retrain job holds it, by this (live) process.
    with retrain_lock(engine, clock=lambda: datetime.now(UTC)):
        busy = run_cli("retrain", "--from-file", "first.jsonl", cwd=workdir)
    assert busy.returncode == 1, busy.stderr
    assert "another retrain is running (the retrain lock is held by " in busy.stderr
    assert f":{os.getpid()}:" in busy.stderr and "Traceback" not in busy.stderr
    assert repo.list_runs(engine) == []  # refused before a run was recorded
    engine.dispose()
