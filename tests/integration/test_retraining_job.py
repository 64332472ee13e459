"""The retrain job end to end on a tiny model and a real SQLite store: first adapter from a file,
incremental retrain on feedback, a rejected bad candidate, and every bad input ending as a
recorded failure while the serving adapter stays active."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine, delete

from adaptd.config import Settings
from adaptd.datasets.records import Example
from adaptd.metrics import Metrics
from adaptd.monitoring.edges import build_windows
from adaptd.monitoring.runner import run_checks
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.retraining.executors import LocalExecutor
from adaptd.retraining.job import RetrainJob, RetrainRequest
from adaptd.retraining.replay import GOLDEN, RESERVOIR, ReplayStore
from adaptd.retraining.settings import GateSettings, RetrainingSettings, ValidationSettings
from adaptd.retraining.spec import Progress, TrainResult, TrainSpec
from adaptd.serving.settings import ModelSettings
from adaptd.storage import repository as repo
from adaptd.storage import tables as t
from adaptd.storage.engine import make_engine
from adaptd.storage.records import FeedbackRecord, PredictionRecord
from tests.unit.retraining.store_registry import StoreRegistry
from tests.unit.retraining.synthetic import (
    T0,
    cued_tiny_model,
    keyword_examples,
    sentence_encoder_copy,
)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return cued_tiny_model(tmp_path_factory.mktemp("tiny") / "bert")


GATES = [
    GateSettings(metric="accuracy", slice="recent", min=0.6, min_gain=0.0),
    GateSettings(metric="accuracy", slice="golden", max_drop=0.05),
]


def make_settings(state: Path, base: Path, **validation: object) -> Settings:
    return Settings(
        state_dir=state,
        # The cued tiny BERT and the shipped recipe, as in tests/e2e/tiny.py.
        model=ModelSettings(base=str(base), max_length=32),
        retraining=RetrainingSettings(min_labels=20, min_holdout=20, threads=1),
        validation=ValidationSettings(golden_size=100, **{"gates": GATES, **validation}),  # type: ignore[arg-type]
    )


def feed(engine: Engine, examples: list[Example], tag: str) -> None:
    """Examples as served predictions with feedback, as the HTTP API would store them."""
    preds = [
        PredictionRecord(
            id=f"{tag}-{i}",
            ts=e.timestamp or T0,
            adapter="x",
            text=e.text,
            text_hash=str(i),
            label="positive",
            score=0.5,
            probabilities={},
            attributes=e.attributes,
        )
        for i, e in enumerate(examples)
    ]
    repo.insert_predictions(engine, preds)
    with engine.begin() as conn:
        repo.upsert_feedback(
            conn,
            [
                FeedbackRecord(
                    prediction_id=p.id, label=e.label or "", ts=p.ts + timedelta(minutes=1)
                )
                for p, e in zip(preds, examples, strict=True)
            ],
        )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def make_job(
    settings: Settings, engine: Engine, registry: StoreRegistry, metrics: Metrics | None = None
) -> RetrainJob:
    return RetrainJob(
        settings,
        engine,
        registry,
        metrics=metrics,
        executor=LocalExecutor(poll_s=0.05),
        clock=Clock(),
    )


@pytest.fixture(scope="module")
def first_adapter(tmp_path_factory: pytest.TempPathFactory, tiny_base: Path) -> Path:
    """An adapter trained on domain a by the job itself, kept for the tests that need a champion."""
    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    root = tmp_path_factory.mktemp("first")
    engine = make_engine(f"sqlite:///{root / 'adaptd.db'}")
    migrate.upgrade(engine)
    settings = make_settings(root / "state", tiny_base)
    registry = StoreRegistry(engine, root / "adapters")
    (root / "adapters").mkdir()
    outcome = make_job(settings, engine, registry).run(
        RetrainRequest(reason="initial", examples=keyword_examples(500))
    )
    assert outcome.status == "promoted", outcome.reason
    active = repo.active_adapter(engine)
    assert active is not None
    engine.dispose()
    return Path(active.path)


@pytest.fixture
def served(sqlite_engine: Engine, tmp_path: Path, first_adapter: Path) -> Iterator[StoreRegistry]:
    """A store whose active adapter is the first adapter, with the golden set frozen and the
    replay reservoir filled when it was trained: without the golden set the golden gate is not
    judged (which blocks by default), without replay a retrain forgets domain a and fails it."""
    (tmp_path / "adapters").mkdir()
    first_store = make_engine(f"sqlite:///{first_adapter.parents[1] / 'adaptd.db'}")
    with sqlite_engine.begin() as conn:
        for name in (RESERVOIR, GOLDEN):
            stored = repo.replay_set(first_store, name)
            assert stored is not None, name
            repo.put_replay_set(conn, name, *stored)
    first_store.dispose()
    registry = StoreRegistry(sqlite_engine, tmp_path / "adapters")
    version = registry.import_candidate(
        first_adapter, now=T0, parent=None, reason="t", data_window={}, metrics={}, config={}
    )
    registry.promote(version, T0, reason="t", verdict={})
    yield registry


def batches_per_pass(rows: int, batch_size: int) -> int:
    """In-batch pairs: a pass cut into batches, a lone last row joining the batch before it."""
    return -(-rows // batch_size) - (rows % batch_size == 1)


def active_version(engine: Engine) -> str:
    active = repo.active_adapter(engine)
    assert active is not None
    return active.version


def test_first_adapter_from_file_is_promoted_with_golden_and_replay(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path
) -> None:
    # The tiny base dressed as a sentence-transformers directory, which contrastive: auto asks
    # for (SetFit's body is a sentence encoder; the random BERT itself is not one). Mean pooling,
    # as the shipped MiniLM: through a random BERT's CLS token the cued keyword reached the
    # pooled features on some base seeds only.
    base = sentence_encoder_copy(tiny_base, tmp_path / "st-bert")
    plain = make_settings(tmp_path / "state", base)
    rt = plain.retraining.model_copy(update={"contrastive": "auto"})
    settings = plain.model_copy(update={"retraining": rt})
    (tmp_path / "adapters").mkdir()
    metrics = Metrics(CollectorRegistry())
    registry = StoreRegistry(sqlite_engine, tmp_path / "adapters")
    outcome = make_job(settings, sqlite_engine, registry, metrics).run(
        RetrainRequest(reason="first adapter", examples=keyword_examples(500))
    )
    assert outcome.status == "promoted", outcome.reason
    assert active_version(sqlite_engine) == outcome.candidate
    run = repo.get_run(sqlite_engine, outcome.run_id)
    assert run.status == "promoted" and run.error is None and run.samples == outcome.samples
    assert run.details and run.details["data"]["holdout"] == 90  # 20 % of 450 (50 golden)
    # A fresh adapter on a few hundred rows of an encoder: contrastive: auto ran the stage on
    # the 360 training rows less the dev split, every pass cut into batches (in-batch pairs).
    training = run.details["training"]
    rows, batch = 360 - training["dev_rows"], rt.batch_size
    per_pass = batches_per_pass(rows, batch)
    assert rt.contrastive_pairing == "in-batch"
    # contrastive_iterations: auto gives a first adapter 10 passes
    assert training["contrastive"]["steps"] == 10 * per_pass
    assert training["contrastive"]["loss_last"] < training["contrastive"]["loss_first"]
    assert outcome.verdict is not None
    # No champion: relative bounds skip; every slice must beat the majority class instead.
    outcomes = {g["name"]: g["outcome"] for g in outcome.verdict["gates"]}
    assert outcomes == {
        "accuracy@recent": "passed",
        "accuracy@golden": "skipped",
        "beats_majority@recent": "passed",
        "beats_majority@golden": "passed",
    }
    majority = outcome.verdict["gates"][2]
    assert majority["ci"][0] > majority["threshold"]["majority"]
    # A first adapter's golden slice is judged on the golden rows and its holdout together:
    # both are first-file rows nothing trained on, and the verdict says so.
    golden_gate = outcome.verdict["gates"][3]
    assert golden_gate["name"] == "beats_majority@golden" and golden_gate["n"] == 140
    assert outcome.verdict["sources"]["golden"] == {"golden": 50, "holdout": 90}
    # The candidate's scored holdout and golden rows are its monitoring reference now.
    stored = repo.reference_rows(sqlite_engine, outcome.candidate or "")
    assert [r.slice for r in stored].count("recent") == 90
    assert [r.slice for r in stored].count("golden") == 140
    row = stored[0]
    assert row.embedding is not None and len(row.embedding) == 2 * 32  # float16, hidden 32
    assert set(row.probabilities) == {"negative", "positive"} and row.text
    assert sum(r.label == r.true_label for r in stored) / len(stored) > 0.6
    assert run.details["reference_rows"] == 230
    monitors = MonitorsSettings(min_samples=50, reference_window=500, current_window=500)
    live = [
        PredictionRecord(
            id=f"live-{i}", ts=T0 + timedelta(days=30, seconds=i), adapter=outcome.candidate or "",
            text=f"live {i}", text_hash=str(i), label="positive", score=0.9,
            probabilities={"negative": 0.1, "positive": 0.9},
        )
        for i in range(60)
    ]  # fmt: skip
    repo.insert_predictions(sqlite_engine, live)
    reference, current = build_windows(
        sqlite_engine, monitors, outcome.candidate, (), T0 + timedelta(days=31),
        labels=settings.model.labels,
    )  # fmt: skip
    assert reference.origin == "validation rows of the adapter (90)"
    assert reference.n == 90 and reference.n_labelled == 90
    assert reference.embeddings is not None and reference.embeddings.shape == (90, 32)
    # Every live prediction is current: none is spent on the reference.
    assert current.n == 60
    signals = run_checks(reference, current, monitors, now=T0 + timedelta(days=31))
    assert {s.details["reference"] for s in signals} == {"validation rows of the adapter (90)"}
    kinds = [e.kind for e in repo.list_events(sqlite_engine)]
    assert kinds == ["retrain_started", "retrain_data", "retrain_trained", "retrain_promoted"]
    # The golden set grew by the first adapter's 90 held-out rows, which nobody trained on.
    replay = ReplayStore(engine=sqlite_engine, capacity=1)
    golden_texts = {e.text for e in replay.golden() or []}
    assert len(golden_texts) == 140
    assert {r.text for r in stored if r.slice == "recent"} <= golden_texts
    assert not golden_texts & {e.text for e in replay.load()[0]}
    assert replay.load()[0]
    assert (
        metrics.registry.get_sample_value("adaptd_retrain_runs_total", {"outcome": "promoted"}) == 1
    )
    assert metrics.registry.get_sample_value("adaptd_retrain_running") == 0
    assert not (tmp_path / "state" / "runs" / str(outcome.run_id)).exists()


def test_incremental_retrain_on_shifted_feedback_is_promoted_then_bad_labels_rejected(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    champion = active_version(sqlite_engine)
    settings = make_settings(tmp_path / "state", tiny_base)
    seen: list[Progress] = []
    job = make_job(settings, sqlite_engine, served)
    job.on_progress = seen.append
    feed(sqlite_engine, keyword_examples(400, seed=3, domain="b", start=T0), "b")
    outcome = job.run(RetrainRequest(reason="drift on b", policy="drift"))
    assert outcome.status == "promoted", outcome.reason
    assert outcome.verdict is not None
    recent = outcome.verdict["gates"][0]
    assert recent["name"] == "accuracy@recent" and recent["outcome"] == "passed"
    assert recent["difference_ci"][0] > 0 and recent["champion"] is not None
    assert "difference +" in outcome.verdict["reason"]
    record = repo.get_adapter(sqlite_engine, outcome.candidate or "")
    assert record.status == "active" and record.parent == champion
    assert record.verdict and record.verdict["passed"]
    assert seen and job.progress is None

    # Shuffled labels, newer than the good ones: the candidate must not get through.
    later = T0 + timedelta(days=1)
    feed(sqlite_engine, keyword_examples(400, seed=4, domain="b", start=later, noise=1.0), "s")
    bad = job.run(RetrainRequest(reason="shuffled", since=later))
    assert bad.status == "rejected"
    assert "gate" in bad.reason
    assert active_version(sqlite_engine) == outcome.candidate
    rejected = repo.get_adapter(sqlite_engine, bad.candidate or "")
    assert rejected.status == "rejected" and rejected.verdict and not rejected.verdict["passed"]
    run = repo.get_run(sqlite_engine, bad.run_id)
    assert run.status == "rejected" and run.error == bad.reason


class Recording:
    """The real executor, keeping the specs the job gave it."""

    def __init__(self) -> None:
        self.inner = LocalExecutor(poll_s=0.05)
        self.specs: list[TrainSpec] = []

    def run(self, spec: TrainSpec, **options: Any) -> TrainResult:
        self.specs.append(spec)
        return self.inner.run(spec, **options)


@pytest.mark.parametrize("sentence_encoder", [True, False], ids=["st-base", "plain-base"])
def test_warm_start_auto_retrains_a_sentence_encoder_from_a_fresh_lora_with_the_stage(
    sqlite_engine: Engine,
    tmp_path: Path,
    tiny_base: Path,
    served: StoreRegistry,
    sentence_encoder: bool,
) -> None:
    # The shipped default: on a sentence-transformers base a retrain is a fresh LoRA shaped by
    # the contrastive stage (bench/adaptation/retrain.py), elsewhere a warm start.
    base = sentence_encoder_copy(tiny_base, tmp_path / "st") if sentence_encoder else tiny_base
    settings = make_settings(tmp_path / "state", base)
    assert settings.retraining.warm_start == "auto"
    feed(sqlite_engine, keyword_examples(300, seed=3, domain="b", start=T0), "b")
    # the champion before the run (the candidate may be promoted and take its place)
    champion = repo.get_adapter(sqlite_engine, active_version(sqlite_engine))
    executor = Recording()
    job = RetrainJob(settings, sqlite_engine, served, executor=executor, clock=Clock())
    outcome = job.run(RetrainRequest(reason="drift on b"))
    assert outcome.candidate is not None, outcome.reason
    (spec,) = [s for s in executor.specs if s.rescore is None]
    assert spec.warm_start == (None if sentence_encoder else champion.path)
    training = (outcome.details or {})["training"]
    stage = training["contrastive"]
    assert (stage is not None) == sentence_encoder
    if stage is not None:  # a retrain replacing a serving adapter: 5 passes (auto), not 10
        assert spec.contrastive_iterations == 5
        assert stage["steps"] == 5 * batches_per_pass(stage["rows"], spec.batch_size)
    # what forgetting follows: whether the candidate inherited the champion's weights
    record = repo.get_adapter(sqlite_engine, outcome.candidate)
    assert record.config is not None
    assert record.config["retraining"]["warm_start"] is (not sentence_encoder)


@pytest.mark.parametrize("refinement", [False, True], ids=["after-a-shift", "refinement"])
def test_a_retrain_proposes_its_mixture_with_the_champion_at_the_share_of_its_kind(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry, refinement: bool
) -> None:
    # The shipped shares: 0.75 of a retrain after a shift, 0.5 of a refinement (RECIPE.md).
    settings = make_settings(tmp_path / "state", tiny_base)
    share = 0.5 if refinement else 0.75
    rt = settings.retraining
    assert (rt.interpolation, rt.refinement_interpolation) == (0.75, 0.5)
    feed(sqlite_engine, keyword_examples(300, seed=3, domain="b", start=T0), "b")
    champion = repo.get_adapter(sqlite_engine, active_version(sqlite_engine))
    executor = Recording()
    job = RetrainJob(settings, sqlite_engine, served, executor=executor, clock=Clock())
    outcome = job.run(RetrainRequest(reason="drift on b", refinement=refinement))
    (spec,) = [s for s in executor.specs if s.rescore is None]
    assert spec.interpolation == share
    # the files judged (and served, if promoted) are that mixture with the champion
    assert outcome.candidate is not None, outcome.reason
    record = repo.get_adapter(sqlite_engine, outcome.candidate)
    meta = json.loads((Path(record.path) / "adaptd.json").read_text())
    assert meta["interpolation"]["share"] == share
    assert meta["interpolation"]["with"] == champion.path


class LabelsArriveWhileTraining:
    """The real executor; ``late`` reaches the store (as feedback) while the candidate trains."""

    def __init__(self, engine: Engine, late: list[Example]) -> None:
        self.inner = LocalExecutor(poll_s=0.05)
        self.engine = engine
        self.late = late
        self.specs: list[TrainSpec] = []
        #: texts the rescoring child was given (its run directory is gone after the run)
        self.rescored: list[str] = []

    def run(self, spec: TrainSpec, **options: Any) -> TrainResult:
        self.specs.append(spec)
        if spec.rescore is None:
            feed(self.engine, self.late, "late")
        else:
            self.rescored = Path(spec.eval_file or "").read_text().splitlines()
        return self.inner.run(spec, **options)


def late_examples(*, flipped: bool) -> list[Example]:
    """300 domain-b labels stamped a day after the run's data, on texts of their own."""
    out = []
    for e in keyword_examples(300, seed=9, domain="b", start=T0 + timedelta(days=1)):
        label = {"positive": "negative", "negative": "positive"}[e.label or ""]
        out.append(
            Example(
                text=f"later {e.text}",
                label=label if flipped else e.label,
                attributes=e.attributes,
                timestamp=e.timestamp,
            )
        )
    return out


def run_with_late_labels(
    engine: Engine,
    state: Path,
    base: Path,
    registry: StoreRegistry,
    late: list[Example],
    **retraining: object,
) -> tuple[LabelsArriveWhileTraining, Any]:
    feed(engine, keyword_examples(400, seed=3, domain="b", start=T0), "b")
    executor = LabelsArriveWhileTraining(engine, late)
    settings = make_settings(state, base)
    settings = settings.model_copy(
        update={"retraining": settings.retraining.model_copy(update=retraining)}
    )
    job = RetrainJob(settings, engine, registry, executor=executor, clock=Clock())
    return executor, job.run(RetrainRequest(reason="drift on b"))


def test_candidate_is_judged_on_labels_that_arrived_while_it_trained(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    executor, outcome = run_with_late_labels(
        sqlite_engine, tmp_path / "state", tiny_base, served, late_examples(flipped=False)
    )
    assert outcome.status == "promoted", outcome.reason
    # 80 = the newest 20 % of the 400 labels of the snapshot; the 300 late ones were given
    # after it, so neither model trained on them
    assert outcome.verdict["sources"] == {
        "recent": {"holdout": 80, "late": 300},
        "golden": {"golden": 140},  # 50 frozen + the first adapter's 90 held-out rows
    }
    assert outcome.reason.endswith("(recent = 80 holdout + 300 late)")
    recent = outcome.verdict["gates"][0]
    assert recent["name"] == "accuracy@recent" and recent["difference_ci"][0] > 0
    training, rescore = executor.specs
    # the second child scored the trained candidate and the champion, and trained nothing
    assert rescore.rescore == training.out_dir and rescore.champion == training.champion
    assert len(executor.rescored) == 300


def test_only_the_newest_max_late_labels_are_scored(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    # Scoring late labels is the longest phase on a slow backbone: the cap bounds it.
    late = late_examples(flipped=False)
    executor, outcome = run_with_late_labels(
        sqlite_engine, tmp_path / "state", tiny_base, served, late, max_late_labels=120
    )
    assert outcome.status == "promoted", outcome.reason
    assert outcome.verdict["sources"]["recent"] == {"holdout": 80, "late": 120}
    assert len(executor.rescored) == 120
    newest = {e.text for e in sorted(late, key=lambda e: e.timestamp or T0)[-120:]}
    assert {json.loads(line)["text"] for line in executor.rescored} <= newest


def test_a_candidate_worse_on_the_late_labels_is_rejected(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    champion = active_version(sqlite_engine)
    # The same run as above (promoted on its 80 held-out labels alone), but the 300 labels that
    # came while it trained say the opposite of what it learnt: the gate must follow them.
    _, outcome = run_with_late_labels(
        sqlite_engine, tmp_path / "state", tiny_base, served, late_examples(flipped=True)
    )
    assert outcome.status == "rejected", outcome.reason
    assert outcome.reason.startswith("gate accuracy@recent failed")
    assert outcome.verdict["sources"] == {
        "recent": {"holdout": 80, "late": 300},
        "golden": {"golden": 140},  # 50 frozen + the first adapter's 90 held-out rows
    }
    assert outcome.verdict["gates"][0]["difference_ci"][1] < 0
    assert active_version(sqlite_engine) == champion


def test_champion_without_golden_set_blocks_unless_not_judged_may_pass(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    with sqlite_engine.begin() as conn:  # as for an imported adapter
        conn.execute(delete(t.replay_sets).where(t.replay_sets.c.name == GOLDEN))
    feed(sqlite_engine, keyword_examples(400, seed=3, domain="b", start=T0), "b")
    blocked = make_job(make_settings(tmp_path / "state", tiny_base), sqlite_engine, served).run(
        RetrainRequest(reason="r")
    )
    assert blocked.status == "rejected"
    assert blocked.reason == (
        "gate accuracy@golden not_judged (no golden slice); validation.not_judged is block"
    )
    settings = make_settings(tmp_path / "state", tiny_base, not_judged="pass")
    # another seed: the same one would make the very candidate just rejected
    settings = settings.model_copy(
        update={"retraining": settings.retraining.model_copy(update={"seed": 1})}
    )
    allowed = make_job(settings, sqlite_engine, served).run(RetrainRequest(reason="r"))
    assert allowed.status == "promoted", allowed.reason
    assert allowed.verdict is not None
    assert allowed.verdict["not_judged"] == {"policy": "pass", "gates": ["accuracy@golden"]}


def test_require_approval_leaves_the_candidate_waiting(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    settings = make_settings(tmp_path / "state", tiny_base)
    settings = settings.model_copy(
        update={"retraining": settings.retraining.model_copy(update={"require_approval": True})}
    )
    champion = active_version(sqlite_engine)
    feed(sqlite_engine, keyword_examples(400, seed=3, domain="b"), "b")
    outcome = make_job(settings, sqlite_engine, served).run(RetrainRequest(reason="r"))
    assert outcome.status == "awaiting_approval", outcome.reason
    assert active_version(sqlite_engine) == champion
    assert repo.get_adapter(sqlite_engine, outcome.candidate or "").status == "candidate"


@pytest.mark.parametrize(
    ("examples", "message"),
    [
        (keyword_examples(5), "unusable training data: only 5 labelled examples"),
        (
            [e for e in keyword_examples(200) if e.label == "positive"],
            "are 'positive'; a retrain needs at least two classes",
        ),
        (
            [*keyword_examples(100), Example(text="x", label="neutral")],
            "label 'neutral' (1 example) is not one of",
        ),
    ],
    ids=["too-few", "single-class", "unknown-label"],
)
def test_bad_feedback_ends_as_recorded_failure(
    sqlite_engine: Engine,
    tmp_path: Path,
    tiny_base: Path,
    served: StoreRegistry,
    examples: list[Example],
    message: str,
) -> None:
    champion = active_version(sqlite_engine)
    feed(sqlite_engine, examples, "bad")
    settings = make_settings(tmp_path / "state", tiny_base)
    outcome = make_job(settings, sqlite_engine, served).run(RetrainRequest(reason="r"))
    assert outcome.status == "failed" and message in outcome.reason
    run = repo.get_run(sqlite_engine, outcome.run_id)
    assert run.status == "failed" and message in (run.error or "")
    assert active_version(sqlite_engine) == champion
    assert repo.list_events(sqlite_engine)[-1].kind == "retrain_failed"


@pytest.mark.parametrize(
    "content", [None, "text,label\n", "not,a\ncsv\x00,x"], ids=["missing", "empty", "bad-label"]
)
def test_bad_golden_file_ends_as_recorded_failure(
    sqlite_engine: Engine,
    tmp_path: Path,
    tiny_base: Path,
    served: StoreRegistry,
    content: str | None,
) -> None:
    golden = tmp_path / "golden.csv"
    if content is not None:
        golden.write_text(content)
    settings = make_settings(tmp_path / "state", tiny_base, golden_file=golden)
    feed(sqlite_engine, keyword_examples(100, seed=5), "a")
    outcome = make_job(settings, sqlite_engine, served).run(RetrainRequest(reason="r"))
    assert outcome.status == "failed"
    assert outcome.reason.startswith("golden set: ") and str(golden) in outcome.reason


def test_corrupted_champion_adapter_fails_the_run_and_keeps_serving(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    champion = active_version(sqlite_engine)
    weights = Path(repo.get_adapter(sqlite_engine, champion).path) / "adapter_model.safetensors"
    weights.write_bytes(b"\x00\x01 not safetensors")
    feed(sqlite_engine, keyword_examples(100, seed=5), "a")
    outcome = make_job(make_settings(tmp_path / "state", tiny_base), sqlite_engine, served).run(
        RetrainRequest(reason="r")
    )
    assert outcome.status == "failed"
    # Caught by the hash check before any file is read (and not in the store to fetch again).
    assert outcome.reason.startswith(f"adapter {champion[:12]}: files at ")
    assert "are corrupted" in outcome.reason
    assert active_version(sqlite_engine) == champion
    assert served.calls == [f"import {champion}", f"promote {champion}"]


def test_child_killed_mid_training_is_recorded(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    champion = active_version(sqlite_engine)
    feed(sqlite_engine, keyword_examples(400, seed=3, domain="b"), "b")
    settings = make_settings(tmp_path / "state", tiny_base)
    job = make_job(settings, sqlite_engine, served)
    executor = job.executor
    assert isinstance(executor, LocalExecutor)

    def kill(progress: Progress) -> None:
        assert executor.pid is not None
        os.kill(executor.pid, signal.SIGKILL)

    job.on_progress = kill
    outcome = job.run(RetrainRequest(reason="r"))
    assert outcome.status == "failed" and "killed by SIGKILL" in outcome.reason
    assert repo.get_run(sqlite_engine, outcome.run_id).error == outcome.reason
    work = tmp_path / "state" / "runs" / str(outcome.run_id)
    assert (work / "spec.json").is_file() and not (work / "adapter").exists()
    assert active_version(sqlite_engine) == champion
    assert len(repo.list_adapters(sqlite_engine)) == 1


def _mount_tiny_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def test_full_disk_while_saving_is_recorded(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    """The child's adapter directory is a 8 KiB tmpfs: saving hits ENOSPC for real."""
    champion = active_version(sqlite_engine)
    feed(sqlite_engine, keyword_examples(100, seed=5), "a")
    settings = make_settings(tmp_path / "state", tiny_base)
    adapter_dir = tmp_path / "state" / "runs" / "1" / "adapter"
    mounted = _mount_tiny_tmpfs(adapter_dir, "8k")
    if not mounted:
        # Without mount rights a full disk is simulated by a file where the directory must go.
        adapter_dir.parent.mkdir(parents=True, exist_ok=True)
        adapter_dir.rmdir()
        adapter_dir.write_text("in the way")
    try:
        outcome = make_job(settings, sqlite_engine, served).run(RetrainRequest(reason="r"))
    finally:
        if mounted:
            subprocess.run(["umount", str(adapter_dir)], check=False)
    assert outcome.status == "failed"
    assert ("No space left on device" if mounted else "File exists") in outcome.reason
    assert active_version(sqlite_engine) == champion
    assert len(repo.list_adapters(sqlite_engine)) == 1


def test_full_disk_in_the_registry_is_recorded(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    champion = active_version(sqlite_engine)
    full = tmp_path / "full-adapters"
    if _mount_tiny_tmpfs(full, "4k"):
        served.adapters_dir = full
    else:
        served.adapters_dir = tmp_path / "a-file"
        served.adapters_dir.write_text("not a directory")
    feed(sqlite_engine, keyword_examples(100, seed=5), "a")
    try:
        outcome = make_job(make_settings(tmp_path / "state", tiny_base), sqlite_engine, served).run(
            RetrainRequest(reason="r")
        )
    finally:
        subprocess.run(["umount", str(full)], check=False, capture_output=True)
    assert outcome.status == "failed" and outcome.candidate is None
    assert active_version(sqlite_engine) == champion
    details = json.dumps(repo.get_run(sqlite_engine, outcome.run_id).details)
    assert "training" not in details or outcome.reason


def test_real_registry_records_a_rejected_first_candidate(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path
) -> None:
    from adaptd.modeling.base import inspect_base
    from adaptd.retraining.registry_port import AdaptersRegistry

    settings = make_settings(tmp_path / "state", tiny_base)
    registry = AdaptersRegistry(
        engine=sqlite_engine,
        adapters_dir=settings.adapters_dir,
        base=inspect_base(str(tiny_base), settings.model.labels, pooling=settings.model.pooling),
    )
    job = RetrainJob(settings, sqlite_engine, registry, executor=LocalExecutor(poll_s=0.05))
    outcome = job.run(
        RetrainRequest(reason="noise", examples=keyword_examples(300, seed=8, noise=1.0))
    )
    assert outcome.status == "rejected" and outcome.candidate is not None
    assert repo.active_adapter(sqlite_engine) is None
    record = repo.get_adapter(sqlite_engine, outcome.candidate)
    assert record.status == "rejected"
    assert record.verdict and record.verdict["reason"] == outcome.reason
    assert any(e.kind == "rejected" for e in repo.list_events(sqlite_engine))


class MeanwhileExecutor:
    """The real executor; ``meanwhile`` runs (as another process would) while the candidate
    trains."""

    def __init__(self, meanwhile: Callable[[], None]) -> None:
        self.inner = LocalExecutor(poll_s=0.05)
        self.meanwhile = meanwhile

    def run(self, spec: TrainSpec, **options: Any) -> TrainResult:
        if spec.rescore is None:
            self.meanwhile()
        return self.inner.run(spec, **options)


def test_an_operator_promotion_made_while_the_candidate_trained_wins(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    champion = repo.get_adapter(sqlite_engine, active_version(sqlite_engine))
    # Another version the operator promotes by hand meanwhile (the same weights, another id).
    other = tmp_path / "other"
    shutil.copytree(champion.path, other)
    config = json.loads((other / "adapter_config.json").read_text())
    (other / "adapter_config.json").write_text(json.dumps({**config, "revision": "by-hand"}))
    chosen: list[str] = []

    def operator_promotes() -> None:
        version = served.import_candidate(
            other, now=T0, parent=None, reason="by hand", data_window={}, metrics={}, config={}
        )
        repo.switch_active_adapter(sqlite_engine, version, T0 + timedelta(days=2))
        chosen.append(version)

    feed(sqlite_engine, keyword_examples(400, seed=3, domain="b", start=T0), "b")
    job = RetrainJob(
        make_settings(tmp_path / "state", tiny_base),
        sqlite_engine,
        served,
        executor=MeanwhileExecutor(operator_promotes),
        clock=Clock(),
    )
    outcome = job.run(RetrainRequest(reason="drift on b"))
    # It would have passed (the same run is promoted in the tests above), but it was judged
    # against the champion the operator replaced: promoting it would undo the operator's choice.
    assert outcome.status == "rejected", outcome.reason
    assert outcome.reason.startswith(
        f"not promoted: the active adapter changed from {champion.version[:12]} to {chosen[0][:12]}"
    )
    assert active_version(sqlite_engine) == chosen[0]
    assert repo.get_adapter(sqlite_engine, outcome.candidate or "").status == "rejected"


def test_a_run_whose_retrain_lock_another_process_took_registers_nothing(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    champion = active_version(sqlite_engine)
    adapters_before = {a.version for a in repo.list_adapters(sqlite_engine)}

    def lease_taken_by_another_host() -> None:
        # As after a store restart or a pause past the lease: another holder has the lock now.
        with sqlite_engine.begin() as conn:
            conn.execute(
                t.store_locks.update().values(
                    holder="elsewhere:7:abcdef", expires=datetime(2099, 1, 1, tzinfo=UTC)
                )
            )

    feed(sqlite_engine, keyword_examples(400, seed=3, domain="b", start=T0), "b")
    job = RetrainJob(
        make_settings(tmp_path / "state", tiny_base),
        sqlite_engine,
        served,
        executor=MeanwhileExecutor(lease_taken_by_another_host),
        clock=Clock(),
    )
    outcome = job.run(RetrainRequest(reason="drift on b"))
    assert outcome.status == "failed"
    assert "another process took it" in outcome.reason
    assert outcome.candidate is None
    assert {a.version for a in repo.list_adapters(sqlite_engine)} == adapters_before
    assert active_version(sqlite_engine) == champion
    run = repo.get_run(sqlite_engine, outcome.run_id)
    assert run.status == "failed" and run.error == outcome.reason
    # Its stop released nothing of the other holder's.
    with sqlite_engine.connect() as conn:
        holders = conn.execute(t.store_locks.select()).all()
    assert [h.holder for h in holders] == ["elsewhere:7:abcdef"]


def lineage_copy(first_adapter: Path, dest: Path, tag: str) -> Path:
    """The first adapter's files under a version of their own (its metadata tagged)."""
    shutil.copytree(first_adapter, dest)
    meta = json.loads((dest / "adaptd.json").read_text())
    (dest / "adaptd.json").write_text(json.dumps({**meta, "test_copy": tag}))
    return dest


def refining_episode(
    engine: Engine, served: StoreRegistry, first_adapter: Path, tmp_path: Path
) -> tuple[str, str]:
    """start -> the episode's first retrain (promoted) -> a refinement (promoted): the start's
    version and the serving refinement's."""
    start = active_version(engine)
    made = T0 + timedelta(hours=1)
    first_retrain = served.import_candidate(
        lineage_copy(first_adapter, tmp_path / "r1", "first retrain"), now=made, parent=start,
        reason="drift", data_window={}, metrics={}, config={},
    )  # fmt: skip
    served.promote(first_retrain, made, reason="drift", verdict={"refinement": False})
    refined = served.import_candidate(
        lineage_copy(first_adapter, tmp_path / "r2", "refinement"), now=made, parent=first_retrain,
        reason="drift", data_window={}, metrics={}, config={},
    )  # fmt: skip
    served.promote(refined, made, reason="drift", verdict={"refinement": True})
    return start, refined


@pytest.mark.parametrize("since", [None, T0], ids=["every-label", "since-the-shift"])
def test_a_refinement_judges_golden_against_the_adapter_its_episode_started_from(
    sqlite_engine: Engine,
    tmp_path: Path,
    tiny_base: Path,
    first_adapter: Path,
    served: StoreRegistry,
    since: datetime | None,
) -> None:
    # start -> first retrain -> a refinement -> this refinement: its golden gate measures
    # forgetting from the start, the adapter the shift found serving.
    start, refined = refining_episode(sqlite_engine, served, first_adapter, tmp_path)
    feed(sqlite_engine, keyword_examples(300, seed=3, domain="b", start=T0), "b")
    executor = Recording()
    settings = make_settings(tmp_path / "state", tiny_base)
    job = RetrainJob(settings, sqlite_engine, served, executor=executor, clock=Clock())
    outcome = job.run(RetrainRequest(reason="drift on b", refinement=True, since=since))
    (spec,) = [s for s in executor.specs if s.rescore is None]
    assert spec.champion == repo.get_adapter(sqlite_engine, refined).path
    assert spec.baseline == repo.get_adapter(sqlite_engine, start).path
    verdict = outcome.verdict or {}
    assert (verdict["refinement"], verdict["baseline"]) == (True, start)
    (golden,) = [g for g in verdict["gates"] if g["slice"] == "golden"]
    baseline = golden["details"]["baseline"]
    # the start's own golden accuracy, scored by the child (the champion is a copy of it)
    assert baseline["value"] == pytest.approx(golden["champion"])
    assert baseline["difference"] == pytest.approx(golden["value"] - baseline["value"])


def test_a_refinement_with_a_baseline_is_judged_on_its_late_labels_too(
    sqlite_engine: Engine,
    tmp_path: Path,
    tiny_base: Path,
    first_adapter: Path,
    served: StoreRegistry,
) -> None:
    # The baseline scores the golden rows only; the labels that came while the refinement
    # trained must still join its recent slice (runs 41 and 42 judged 311-325 rows, not 711-725).
    start, _ = refining_episode(sqlite_engine, served, first_adapter, tmp_path)
    feed(sqlite_engine, keyword_examples(400, seed=3, domain="b", start=T0), "b")
    executor = LabelsArriveWhileTraining(sqlite_engine, late_examples(flipped=False))
    settings = make_settings(tmp_path / "state", tiny_base)
    job = RetrainJob(settings, sqlite_engine, served, executor=executor, clock=Clock())
    outcome = job.run(RetrainRequest(reason="drift on b", refinement=True))
    verdict = outcome.verdict or {}
    assert verdict["baseline"] == start
    assert verdict["sources"]["recent"] == {"holdout": 80, "late": 300}
    assert verdict["gates"][0]["n"] == 380


def test_a_refinement_of_the_adapter_the_episode_started_from_has_no_other_baseline(
    sqlite_engine: Engine, tmp_path: Path, tiny_base: Path, served: StoreRegistry
) -> None:
    # The champion started the episode (an operator rolled back to it, or the episode's first
    # run made no promotion the policy saw): its gates measure against it alone, as before.
    feed(sqlite_engine, keyword_examples(300, seed=3, domain="b", start=T0), "b")
    executor = Recording()
    settings = make_settings(tmp_path / "state", tiny_base)
    job = RetrainJob(settings, sqlite_engine, served, executor=executor, clock=Clock())
    outcome = job.run(RetrainRequest(reason="drift on b", refinement=True, since=T0))
    (spec,) = [s for s in executor.specs if s.rescore is None]
    assert spec.baseline is None
    verdict = outcome.verdict or {}
    assert (verdict["refinement"], verdict["baseline"]) == (True, None)
    assert all("baseline" not in g["details"] for g in verdict["gates"])
