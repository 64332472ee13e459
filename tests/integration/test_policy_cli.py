"""`adaptd policy ...` as an operator runs it: real subprocesses, exit codes, output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adaptd.policy.backtest import signal_to_result
from adaptd.signals import Signal, Status
from adaptd.storage import migrate, repository
from adaptd.storage.engine import make_engine
from adaptd.storage.records import FeedbackRecord, PredictionRecord

POLICIES = Path(__file__).resolve().parents[2] / "policies"
T0 = datetime(2026, 3, 1, tzinfo=UTC)
LABEL_EVERY = timedelta(seconds=45)


def adaptd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ADAPTD_CONFIG"}
    return subprocess.run(
        [sys.executable, "-m", "adaptd", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_validate_accepts_the_shipped_files(tmp_path):
    # fairness-first.yaml watches bias.gender.*: signals that exist once gender is monitored.
    (tmp_path / "adaptd.yaml").write_text("monitors:\n  attributes: [gender]\n")
    result = adaptd("policy", "validate", *map(str, sorted(POLICIES.glob("*.yaml"))), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4 file(s), 9 policies: valid" in result.stdout


def test_validate_accepts_the_demo_policy_on_the_default_config(tmp_path):
    demo = Path(__file__).resolve().parents[2] / "daemon" / "adaptd" / "demo" / "policy.yaml"
    result = adaptd("policy", "validate", str(demo), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 file(s), 1 policies: valid" in result.stdout


def test_fairness_first_on_the_default_config_says_to_list_the_attribute(tmp_path):
    path = POLICIES / "fairness-first.yaml"
    result = adaptd("policy", "validate", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"{path}:10: policies.0.trip.any.0.signal: signal 'bias.gender.dp_diff' needs the "
        "request attribute 'gender' listed in the config key monitors.attributes "
        "(listed now: none)"
    )
    # one line per signal that names gender, nothing about lists that came out empty
    assert len(lines) == 5
    assert all("monitors.attributes" in line for line in lines)


def test_validate_reports_each_error_on_one_line_and_exits_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "policies:\n"
        "  - name: x\n"
        "    trip:\n"
        "      all:\n"
        "        - {signal: drift.embedding.auc, gt: 0.5}\n"
        "        - {signal: drift.embedding.auc, lt: 0.3}\n"
        "    cooldown: -6h\n"
        "    action: retrian\n"
    )
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    broken = tmp_path / "broken.yaml"
    broken.write_text("policies:\n  - name: [x\n")
    result = adaptd("policy", "validate", str(bad), str(empty), str(broken), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    # Until the monitors' catalog is installed a warning line says names went unchecked.
    errors = [line for line in result.stderr.splitlines() if line.startswith(str(tmp_path))]
    assert errors[0].startswith(f"{bad}:3: policies.0.trip: contradictory thresholds")
    assert errors[1].startswith(f"{bad}:7: policies.0.cooldown: duration must not be negative")
    assert errors[2].startswith(f"{bad}:8: policies.0.action.type: unknown action type 'retrian'")
    assert errors[3] == f"{empty}: file is empty"
    assert errors[4].startswith(f"{broken}:") and "YAML syntax error" in errors[4]
    assert len(errors) == 5


def test_schema_is_json(tmp_path):
    result = adaptd("policy", "schema", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "adaptd policy file"


@pytest.fixture
def store_with_a_shift(tmp_path: Path) -> Path:
    """A config and a store holding two days of checks, with a domain shift after the first."""
    config = tmp_path / "adaptd.yaml"
    config.write_text(f"state_dir: {tmp_path / 'state'}\n")
    (tmp_path / "state").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'state' / 'adaptd.db'}")
    migrate.upgrade(engine)
    results = []
    for i in range(2 * 96):
        ts = T0 + i * timedelta(minutes=15)
        auc = 0.92 if i >= 96 else 0.5 + 0.01 * ((i % 5) - 2)
        results.append(
            signal_to_result(
                Signal(
                    name="drift.embedding.auc",
                    ts=ts,
                    status=Status.DRIFT if auc > 0.6 else Status.OK,
                    value=auc,
                    n_reference=2000,
                    n_current=2000,
                    reference_value=0.5,
                    adapter="a1",
                )
            )
        )
    repository.add_monitor_results(engine, results)
    # Labels trickle in all along, 20 per check interval (one every 45 s).
    labelled = [
        PredictionRecord(
            id=f"p{j}",
            ts=T0 + j * LABEL_EVERY,
            adapter="a1",
            text=f"text {j}",
            text_hash=str(j),
            label="positive",
            score=0.9,
            probabilities={},
        )  # fmt: skip
        for j in range(2 * 96 * 20)
    ]
    repository.insert_predictions(engine, labelled)
    with engine.begin() as conn:
        repository.upsert_feedback(
            conn,
            [
                FeedbackRecord(prediction_id=p.id, label="negative", ts=p.ts + timedelta(seconds=1))
                for p in labelled
            ],
        )
    engine.dispose()
    return config


def test_backtest_prints_when_the_default_policy_would_retrain(tmp_path, store_with_a_shift):
    result = adaptd(
        "policy", "backtest", "--config", str(store_with_a_shift), "--since", "2026-03-01",
        "--policy", str(POLICIES / "default.yaml"), "--json", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["checks"] == 192
    retrains = [
        d for d in report["decisions"] if d["kind"] == "action" and d["action"] == "retrain"
    ]
    assert len(retrains) == 1
    # Tripped on the third drifting check; retrains once 200 labels came after the calm check
    # before the last calm one (day 1 minus 30 minutes): ten check intervals of 20 labels later.
    trip = next(d for d in report["decisions"] if d["kind"] == "trip")
    assert trip["ts"] == (T0 + timedelta(days=1, minutes=30)).isoformat()
    baseline = T0 + timedelta(days=1, minutes=-30)
    assert retrains[0]["ts"] == (baseline + 10 * timedelta(minutes=15)).isoformat()
    assert retrains[0]["overrides"] == {}
    assert retrains[0]["message"].startswith(f"retrain (200 labels since {baseline.isoformat()}")
    waits = [d["kind"] for d in report["decisions"] if d["policy"] == "retrain-on-shift"]
    assert waits[:4] == ["trip", "suppressed", "wait_ended", "action"]

    text = adaptd(
        "policy", "backtest", "--config", str(store_with_a_shift), "--since", "2026-03-01",
        "--until", "2026-03-02T12:00", "--policy", str(POLICIES / "default.yaml"), cwd=tmp_path,
    )  # fmt: skip
    assert text.returncode == 0, text.stderr
    assert "retrain-on-shift  trip" in text.stdout
    assert "retrains it would have started: 1" in text.stdout


def test_backtest_rejects_a_bad_date(tmp_path, store_with_a_shift):
    result = adaptd(
        "policy", "backtest", "--config", str(store_with_a_shift), "--since", "yesterday",
        "--policy", str(POLICIES / "default.yaml"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert "not a date, time or duration: 'yesterday'" in result.stderr
