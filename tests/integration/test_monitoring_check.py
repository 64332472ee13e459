"""Monitors against a real store (SQLite and PostgreSQL): windows from predictions and feedback as
the serving path writes them, signals stored and read back, and ``adaptd check``/``report``."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from adaptd.cli import app
from adaptd.errors import AdaptdError
from adaptd.monitoring.edges import build_windows, store_signals
from adaptd.monitoring.runner import run_checks
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.signals import Status
from adaptd.storage import repository
from adaptd.storage.records import (
    AdapterRecord,
    FeedbackRecord,
    LabelledPrediction,
    ReferenceRow,
)
from tests.unit.monitoring.factory import LABELS, NOW, records

SETTINGS = MonitorsSettings(
    min_samples=100,
    reference_window=300,
    current_window=300,
    attributes=["group"],
    bootstrap_samples=20,
)


def fill(engine: Engine, *, shift: bool) -> None:
    repository.add_adapter(
        engine, AdapterRecord(version="v1", status="candidate", path="/x", created=NOW)
    )
    repository.activate_adapter(engine, "v1", NOW)
    stable = records(300, seed=1, start=NOW)
    later = records(
        300,
        seed=2,
        start=NOW + timedelta(hours=1),
        embedding_shift=0.5 if shift else 0.0,
        positive_share=0.85 if shift else 0.5,
        tweet_share=0.8 if shift else 0.0,
        error_rate=0.35 if shift else 0.1,
    )
    rows = stable + later
    plain = [r.prediction if isinstance(r, LabelledPrediction) else r for r in rows]
    repository.insert_predictions(engine, plain)
    feedback = [
        FeedbackRecord(
            prediction_id=r.prediction.id,
            label=r.true_label,
            ts=r.prediction.ts + timedelta(minutes=1),
        )
        for r in rows
        if isinstance(r, LabelledPrediction)
    ]
    with engine.begin() as conn:
        repository.upsert_feedback(conn, feedback)


def test_windows_checks_and_stored_results(engine: Engine) -> None:
    fill(engine, shift=True)
    now = NOW + timedelta(days=1)
    reference, current = build_windows(engine, SETTINGS, "v1", [], now, labels=LABELS)
    assert (reference.n, current.n) == (300, 300)
    # no stored validation rows (an imported adapter): the first live predictions, said so
    assert reference.origin == "first live predictions of the adapter (300)"
    assert reference.n_labelled > 250 and current.n_labelled > 250
    assert reference.embeddings is not None and reference.embeddings.shape == (300, 16)
    assert current.start is not None and current.start >= NOW + timedelta(hours=1)
    signals = run_checks(reference, current, SETTINGS, now=now)
    by = {s.name: s for s in signals}
    for name in (
        "drift.embedding.auc",
        "drift.prediction.jsd",
        "drift.text.url_share",
        "performance.accuracy",
    ):
        assert by[name].status is Status.DRIFT, name
    store_signals(engine, signals)
    stored = repository.monitor_results(engine, signals=["drift.embedding.auc"])
    assert len(stored) == 1
    assert stored[0].status == "drift" and stored[0].n_current == 300 and stored[0].adapter == "v1"
    assert stored[0].value == pytest.approx(by["drift.embedding.auc"].value)


def test_stored_validation_rows_are_the_reference_topped_up_to_min_samples(
    engine: Engine,
) -> None:
    """With its scored validation rows stored, an adapter's reference predates every live
    prediction: a shift right after the swap is all in the current window."""
    fill(engine, shift=True)
    validation = [
        ReferenceRow(
            adapter="v1",
            slice="recent",
            position=i,
            text=r.prediction.text,
            true_label=r.true_label,
            label=r.prediction.label,
            probabilities=r.prediction.probabilities,
            embedding=r.prediction.embedding,
            attributes=r.prediction.attributes,
        )
        for i, r in enumerate(records(300, seed=5, start=NOW, labelled=1.0))
        if isinstance(r, LabelledPrediction)
    ]
    golden = [
        dataclasses.replace(v, slice="golden", position=1000 + v.position) for v in validation
    ]
    repository.replace_reference_rows(engine, "v1", [*validation, *golden], NOW)
    now = NOW + timedelta(days=1)
    reference, current = build_windows(engine, SETTINGS, "v1", [], now, labels=LABELS)
    # only the recent slice: golden rows are the old domain after an adaptation
    assert reference.origin == "validation rows of the adapter (300)"
    assert reference.n == 300 and reference.n_labelled == 300
    assert current.n == 300 and current.start is not None and current.start > NOW
    signals = run_checks(reference, current, SETTINGS, now=now)
    by = {s.name: s for s in signals}
    assert by["drift.embedding.auc"].status is Status.DRIFT
    assert by["drift.embedding.auc"].details["reference"] == reference.origin
    # too few stored rows: the first live predictions top them up to min_samples
    repository.replace_reference_rows(engine, "v1", validation[:40], NOW)
    reference, current = build_windows(engine, SETTINGS, "v1", [], now, labels=LABELS)
    assert reference.origin == (
        "validation rows of the adapter (40) + its first live predictions (60)"
    )
    assert reference.n == 100 and current.n == 300


def test_a_young_adapter_has_no_current_window_yet(engine: Engine) -> None:
    fill(engine, shift=False)
    big = SETTINGS.model_copy(update={"reference_window": 1000})
    reference, current = build_windows(
        engine, big, "v1", [], NOW + timedelta(days=1), labels=LABELS
    )
    assert (reference.n, current.n) == (600, 0)
    signals = run_checks(reference, current, big, now=NOW + timedelta(days=1))
    assert not [s for s in signals if s.has_verdict]


def test_feedback_of_any_age_is_joined_onto_the_reference(engine: Engine) -> None:
    fill(engine, shift=False)
    # much newer feedback for other predictions must not push the reference's labels out
    extra = records(2000, seed=9, start=NOW + timedelta(hours=5), labelled=1.0)
    repository.insert_predictions(
        engine, [r.prediction for r in extra if isinstance(r, LabelledPrediction)]
    )
    with engine.begin() as conn:
        repository.upsert_feedback(
            conn,
            [
                FeedbackRecord(
                    prediction_id=r.prediction.id, label=r.true_label, ts=NOW + timedelta(days=3)
                )
                for r in extra
                if isinstance(r, LabelledPrediction)
            ],
        )
    reference, current = build_windows(
        engine, SETTINGS, "v1", [], NOW + timedelta(days=4), labels=LABELS
    )
    assert reference.n_labelled > 250
    assert current.n == 300 and current.n_labelled == 300


def _config(tmp_path: Path, engine: Engine) -> Path:
    url = engine.url.render_as_string(hide_password=False)
    config = tmp_path / "adaptd.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\n"
        f"store: {{url: '{url}'}}\n"
        "monitors: {min_samples: 100, reference_window: 300, current_window: 300, "
        "attributes: [group], bootstrap_samples: 20}\n"
    )
    return config


def test_adaptd_check_json(engine: Engine, tmp_path: Path) -> None:
    fill(engine, shift=True)
    result = CliRunner().invoke(
        app, ["check", "--json", "--config", str(_config(tmp_path, engine))]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["adapter"] == "v1" and document["current_rows"] == 300
    by = {s["name"]: s for s in document["signals"]}
    assert by["drift.embedding.auc"]["status"] == "drift"
    assert by["bias.group.dp_diff"]["details"]["groups"] == {"a": 150, "b": 150}


def test_adaptd_check_table_on_an_empty_store(engine: Engine, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--config", str(_config(tmp_path, engine))])
    assert result.exit_code == 0, result.output
    assert "no predictions in the current window yet" in result.stdout
    rows = result.stdout.splitlines()[3:]
    assert rows and all(line.split()[1] in ("insufficient_data", "error") for line in rows)


def test_adaptd_report_writes_evidently_html(engine: Engine, tmp_path: Path) -> None:
    fill(engine, shift=True)
    out = tmp_path / "drift.html"
    result = CliRunner().invoke(
        app, ["report", "--out", str(out), "--config", str(_config(tmp_path, engine))]
    )
    assert result.exit_code == 0, result.output
    assert out.stat().st_size > 10_000 and "<html" in out.read_text()[:2000].lower()
    assert "of 16 columns drifted" in result.stdout and "pca_1" in result.stdout


def test_check_with_a_broken_config_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "adaptd.yaml"
    bad.write_text("monitors: {min_sample: 3}\n")
    done = subprocess.run(
        [sys.executable, "-m", "adaptd", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "min_sample" in done.stderr


def test_adaptd_report_on_an_empty_store_says_why(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "drift.html"
    config = _config(tmp_path, engine)
    result = CliRunner().invoke(app, ["report", "--out", str(out), "--config", str(config)])
    assert isinstance(result.exception, AdaptdError)  # main() turns it into one line, exit 1
    assert "reference has 0 and the current window 0" in str(result.exception)
    assert not out.exists()


def test_current_window_by_minutes(engine: Engine) -> None:
    fill(engine, shift=False)
    # the later rows are one per second from NOW+1h; a one-minute window ending at NOW+1h+2min
    settings = SETTINGS.model_copy(update={"current_minutes": 1.0})
    now = NOW + timedelta(hours=1, minutes=2)
    _, current = build_windows(engine, settings, "v1", [], now, labels=LABELS)
    assert current.n == 61  # both ends are inclusive: [now - 1 min, now]
    assert current.start == NOW + timedelta(hours=1, minutes=1)
    assert current.end == now


def test_stored_texts_reach_the_monitors_cut_to_max_text_chars(engine: Engine) -> None:
    fill(engine, shift=True)
    now = NOW + timedelta(days=1)
    whole = build_windows(engine, SETTINGS, "v1", [], now, labels=LABELS)
    cut = build_windows(engine, SETTINGS, "v1", [], now, labels=LABELS, max_text_chars=5)
    for full, short in zip(whole, cut, strict=True):
        assert any(t is not None and len(t) > 5 for t in full.texts)
        assert short.texts == tuple(None if t is None else t[:5] for t in full.texts)
