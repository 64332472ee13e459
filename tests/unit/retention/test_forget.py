"""Forgetting on a real store (SQLite and PostgreSQL) and real files: every copy goes, the
adapters that learned from it are named, an unknown id deletes nothing."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from adaptd.datasets.records import Example
from adaptd.errors import NotFoundError
from adaptd.privacy.guard import keyed_hash as text_hash
from adaptd.privacy.keys import load_key
from adaptd.privacy.settings import KEY_ENV, PrivacySettings
from adaptd.retention.forget import Target, forget, queue_retrain
from adaptd.retention.lineage import keyed_hash, lineage_key
from adaptd.retraining.replay import ReplayStore
from adaptd.storage import repository as repo
from adaptd.storage import tables as t
from adaptd.storage.records import FeedbackRecord, PredictionRecord, ReferenceRow
from tests.unit.retention.builders import NOW, add_adapter, count, settings_for

ALICE_1 = "Alice Zyx writes from zqx-1@example.org: the refund never came"
ALICE_2 = "Ålice Zyx again, about the order ZQX-2"
BOB = "Bob thinks the film was fine"


def prediction(pid: str, text: str, user: str) -> PredictionRecord:
    return PredictionRecord(
        id=pid, ts=NOW - timedelta(days=1), adapter="v1", text=text, text_hash=pid,
        label="positive", score=0.9, probabilities={"negative": 0.1, "positive": 0.9},
        attributes={"user": user},
    )  # fmt: skip


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Path:
    """A store and a state directory where Alice's two texts live in every place."""
    state = tmp_path / "state"
    key = lineage_key(PrivacySettings(), state)
    repo.insert_predictions(
        engine,
        [prediction("alice-1", ALICE_1, "alice"), prediction("alice-2", ALICE_2, "alice"),
         prediction("bob-1", BOB, "bob")],
    )  # fmt: skip
    with engine.begin() as conn:
        repo.upsert_feedback(
            conn,
            [
                FeedbackRecord(prediction_id=p, label="negative", ts=NOW)
                for p in ("alice-1", "bob-1")
            ],
        )
    repo.replace_reference_rows(
        engine,
        "v1",
        [
            ReferenceRow(adapter="v1", slice="recent", position=i, text=text, true_label="positive",
                         label="positive", probabilities={"positive": 1.0})
            for i, text in enumerate((ALICE_1, BOB))
        ],
        NOW,
    )  # fmt: skip
    # v1 trained on alice-1; v2 warm-started from v1; v3 from v2 but from the base model;
    # v4 got Alice's text through the replay reservoir (no prediction id); v5 is Bob's only.
    for version, parent, warm in (
        ("v1", None, True), ("v2", "v1", True), ("v3", "v2", False), ("v4", None, True),
        ("v5", None, True),
    ):  # fmt: skip
        add_adapter(engine, version, status="retired", path=state / version, parent=parent,
                    warm_start=warm)  # fmt: skip
    lineage = {
        "v1": [("alice-1", ALICE_1), ("bob-1", BOB)],
        "v2": [("bob-1", BOB)],
        "v3": [("bob-1", BOB)],
        "v4": [(None, ALICE_1.upper())],  # the same text, normalised differently
        "v5": [(None, BOB)],
    }
    for version, rows in lineage.items():
        run = repo.start_run(engine, now=NOW, reason="r", status="promoted")
        repo.update_run(engine, run, candidate=version)
        repo.add_training_rows(engine, run, [(pid, keyed_hash(key, text)) for pid, text in rows])
    replay = ReplayStore(engine=engine, capacity=10)
    replay.add([Example(text=ALICE_1, label="negative"), Example(text=BOB, label="positive")])
    replay.freeze_golden(
        [Example(text=ALICE_2, label="negative", attributes={"user": "alice"}),
         Example(text=BOB, label="positive")],
        2,
    )  # fmt: skip
    for run_id, texts in (("7", (ALICE_1, BOB)), ("8", (BOB,))):
        (state / "runs" / run_id).mkdir(parents=True)
        with (state / "runs" / run_id / "train.jsonl").open("w") as f:
            for text in texts:
                f.write(json.dumps({"text": text, "label": "x", "weight": 1.0}) + "\n")
    return state


def store_texts(engine: Engine) -> list[str]:
    replay = ReplayStore(engine=engine, capacity=10)
    with engine.connect() as conn:
        return [
            *conn.execute(select(t.predictions.c.text)).scalars(),
            *conn.execute(select(t.reference_rows.c.text)).scalars(),
            *(e.text for e in [*replay.load()[0], *(replay.golden() or [])]),
        ]


def reservoir(engine: Engine) -> list[str]:
    return [e.text for e in ReplayStore(engine=engine, capacity=10).load()[0]]


def grep(state: Path, needle: str) -> list[Path]:
    hits = []
    for root, _, files in os.walk(state):
        for name in files:
            path = Path(root) / name
            data = path.read_bytes()
            if needle.encode() in data or json.dumps(needle).encode() in data:
                hits.append(path)
    return hits


def test_forget_by_id_removes_every_copy_and_names_the_adapters(
    engine: Engine, world: Path
) -> None:
    settings = settings_for(world, str(engine.url))
    labels = repo.count_labelled(engine)
    report = forget(engine, settings, Target(ids=("alice-1",)), NOW)
    assert repo.count_labelled(engine) == labels  # the policies' running total keeps them
    assert report.deleted == {
        "predictions": 1, "feedback": 1, "reference_rows": 1, "training_rows": 2,
        "reservoir": 1, "golden": 0, "run_directories": 1,
    }  # fmt: skip
    assert [(a.version, a.how) for a in report.adapters] == [
        ("v1", "trained on them"),
        ("v4", "trained on them"),
        ("v2", "warm-started from v1"),
    ]
    assert ALICE_1 not in store_texts(engine)
    # the state directory, and on SQLite the database file and its log, bytes and all
    assert grep(world.parent, "zqx-1@example.org") == []
    assert reservoir(engine) == [BOB]
    assert sorted(p.name for p in (world / "runs").iterdir()) == ["8"]
    # Bob is untouched, and the audit trail names versions, never the person
    assert count(engine, "predictions") == 2 and count(engine, "feedback") == 1
    assert repo.runs_trained_on(engine, prediction_ids=["bob-1"], text_hashes=[]) != set()
    (event,) = repo.list_events(engine, kinds=["data_forgotten"])
    assert "alice" not in json.dumps([event.message, event.details]).lower()
    assert event.details is not None and event.details["adapters"] == ["v1", "v4", "v2"]


def test_forget_by_attribute_finds_rows_in_files_too(engine: Engine, world: Path) -> None:
    settings = settings_for(world, str(engine.url))
    report = forget(engine, settings, Target(attribute=("user", "alice")), NOW)
    assert report.deleted["predictions"] == 2
    assert report.deleted["golden"] == 1
    assert store_texts(engine).count(BOB) == 4  # prediction, reference row, reservoir, golden
    assert grep(world, "Zyx") == []


def test_dry_run_reports_and_deletes_nothing(engine: Engine, world: Path) -> None:
    settings = settings_for(world, str(engine.url))
    before = store_texts(engine)
    report = forget(engine, settings, Target(ids=("alice-1",)), NOW, dry_run=True)
    assert report.deleted["predictions"] == 1 and report.deleted["run_directories"] == 1
    assert [a.version for a in report.adapters] == ["v1", "v4", "v2"]
    assert store_texts(engine) == before
    assert grep(world, "zqx-1@example.org") != []


@pytest.mark.parametrize("ids", [("nobody",), ("alice-1", "nobody")])
def test_an_unknown_id_deletes_nothing(engine: Engine, world: Path, ids: tuple[str, ...]) -> None:
    settings = settings_for(world, str(engine.url))
    with pytest.raises(NotFoundError, match="unknown prediction id 'nobody'.*nothing deleted"):
        forget(engine, settings, Target(ids=ids), NOW)
    assert count(engine, "predictions") == 3
    assert len(reservoir(engine)) == 2


def test_an_attribute_nothing_has_is_an_error(engine: Engine, world: Path) -> None:
    settings = settings_for(world, str(engine.url))
    with pytest.raises(NotFoundError, match="nothing matches attribute user=carol"):
        forget(engine, settings, Target(attribute=("user", "carol")), NOW)


def test_a_queued_retrain_waits_for_the_control_role(engine: Engine) -> None:
    run = queue_retrain(engine, NOW)
    assert [r.id for r in repo.queued_runs(engine)] == [run]
    assert repo.claim_queued_run(engine, run, NOW)
    assert not repo.claim_queued_run(engine, run, NOW)  # a second claimer loses
    assert repo.get_run(engine, run).status == "running"


def test_a_running_retrain_is_named(engine: Engine, world: Path) -> None:
    run = repo.start_run(engine, now=NOW, reason="policy", status="running")
    report = forget(engine, settings_for(world, str(engine.url)), Target(ids=("bob-1",)), NOW)
    assert report.running == [run]


def test_lineage_hashes_use_the_privacy_key_bound_to_their_purpose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One secret to keep and share (the privacy key), two uses that never collide."""
    privacy = PrivacySettings()
    monkeypatch.setenv(KEY_ENV, "k" * 40)
    key = lineage_key(privacy, tmp_path)
    assert list(tmp_path.iterdir()) == []  # no second key file
    assert keyed_hash(key, ALICE_1) != text_hash(load_key(privacy, tmp_path), ALICE_1)
    monkeypatch.setenv(KEY_ENV, "m" * 40)
    assert lineage_key(privacy, tmp_path) != key  # rotating the privacy key rotates both
