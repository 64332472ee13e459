"""The retraining half of the loop on a tiny model, the real registry and a real store:
first adapter -> shifted feedback -> retrain -> validate -> promote -> probation -> rollback.

Serving is not part of this branch, so the probation traffic is written to the store as the
prediction log would (predictions tagged with the adapter that served them, then feedback)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adaptd.adapters import registry
from adaptd.config import Settings
from adaptd.modeling.base import inspect_base
from adaptd.retraining.executors import LocalExecutor
from adaptd.retraining.job import RetrainJob, RetrainRequest
from adaptd.retraining.probation import decide, observe
from adaptd.retraining.registry_port import AdaptersRegistry
from adaptd.retraining.settings import GateSettings, RetrainingSettings, ValidationSettings
from adaptd.serving.settings import ModelSettings
from adaptd.storage import repository as repo
from adaptd.storage.records import FeedbackRecord, PredictionRecord
from tests.unit.retraining.synthetic import T0, cued_tiny_model, keyword_examples

LABELS = ("negative", "positive")


def log_traffic(engine: Engine, adapter: str, n: int, error_every: int, start: datetime) -> None:
    preds, truth = [], []
    for i in range(n):
        true = LABELS[i % 2]
        said = LABELS[1 - i % 2] if i % error_every == 0 else true
        preds.append(
            PredictionRecord(
                id=f"{adapter[:8]}-{start.isoformat()}-{i}",
                ts=start + timedelta(seconds=i),
                adapter=adapter,
                text=f"served {i}",
                text_hash=str(i),
                label=said,
                score=0.9,
                probabilities={},
            )
        )
        truth.append(true)
    repo.insert_predictions(engine, preds)
    with engine.begin() as conn:
        repo.upsert_feedback(
            conn,
            [
                FeedbackRecord(prediction_id=p.id, label=t, ts=p.ts + timedelta(seconds=30))
                for p, t in zip(preds, truth, strict=True)
            ],
        )


@pytest.mark.slow
def test_retrain_promote_probation_rollback(sqlite_engine: Engine, tmp_path: Path) -> None:
    base = cued_tiny_model(tmp_path / "tiny")
    settings = Settings(
        state_dir=tmp_path / "state",
        # The cued tiny BERT and the shipped recipe, as in tests/e2e/tiny.py.
        model=ModelSettings(base=str(base), max_length=32),
        retraining=RetrainingSettings(min_labels=20, threads=1),
        validation=ValidationSettings(
            golden_size=100,
            gates=[
                GateSettings(metric="accuracy", slice="recent", min=0.6),
                GateSettings(metric="accuracy", slice="golden", max_drop=0.05),
            ],
        ),
    )
    port = AdaptersRegistry(
        engine=sqlite_engine,
        adapters_dir=settings.adapters_dir,
        base=inspect_base(str(base), LABELS, pooling="auto"),
    )
    now = [datetime(2026, 4, 1, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] += timedelta(seconds=1)
        return now[0]

    job = RetrainJob(
        settings, sqlite_engine, port, executor=LocalExecutor(poll_s=0.05), clock=clock
    )

    first = job.run(RetrainRequest(reason="bootstrap", examples=keyword_examples(500)))
    assert first.status == "promoted", first.reason
    assert first.candidate is not None

    # The traffic shifts to domain b; labels come back; the policy asks for a retrain.
    log_traffic(sqlite_engine, first.candidate, 300, error_every=10, start=T0)
    shifted = keyword_examples(400, seed=3, domain="b", start=T0 + timedelta(hours=1))
    second = job.run(RetrainRequest(reason="drift", examples=shifted, policy="drift"))
    assert second.status == "promoted", second.reason
    assert second.candidate is not None
    active = repo.active_adapter(sqlite_engine)
    assert active is not None and active.version == second.candidate
    assert active.parent == first.candidate

    # Probation: the new adapter serves worse than the old one did.
    swap = T0 + timedelta(days=1)
    log_traffic(sqlite_engine, second.candidate, 200, error_every=3, start=swap)
    previous = observe(sqlite_engine, first.candidate, LABELS, min_group_size=30)
    current = observe(sqlite_engine, second.candidate, LABELS, since=swap, min_group_size=30)
    decision = decide(
        previous,
        current,
        started=swap,
        now=swap + timedelta(minutes=20),
        settings=settings.retraining.probation,
    )
    assert decision.action == "rollback", decision
    registry.rollback(sqlite_engine, clock(), reason=f"probation: {decision.reason}")
    restored = repo.active_adapter(sqlite_engine)
    assert restored is not None and restored.version == first.candidate
    assert repo.get_adapter(sqlite_engine, second.candidate).status == "rolled_back"
    rolled = [e for e in repo.list_events(sqlite_engine) if e.kind == "rolled_back"]
    assert rolled and "probation: labelled accuracy" in rolled[-1].message
