"""Probation on a real store: labelled feedback per adapter decides keep or rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from adaptd.retraining.probation import decide, observe
from adaptd.retraining.settings import ProbationSettings
from adaptd.storage import repository as repo
from adaptd.storage.records import FeedbackRecord, PredictionRecord

T0 = datetime(2026, 2, 1, tzinfo=UTC)
LABELS = ("negative", "positive")


def serve(engine: Engine, adapter: str, n: int, wrong_every: int, start: datetime) -> None:
    preds = []
    truth = []
    for i in range(n):
        true = LABELS[i % 2]
        said = LABELS[1 - i % 2] if i % wrong_every == 0 else true
        preds.append(
            PredictionRecord(
                id=f"{adapter}-{i}",
                ts=start + timedelta(seconds=i),
                adapter=adapter,
                text=f"t{i}",
                text_hash=str(i),
                label=said,
                score=0.9,
                probabilities={},
                attributes={"gender": ("male", "female")[(i // 2) % 2]},
            )
        )
        truth.append(true)
    repo.insert_predictions(engine, preds)
    with engine.begin() as conn:
        repo.upsert_feedback(
            conn,
            [
                FeedbackRecord(prediction_id=p.id, label=t, ts=p.ts + timedelta(minutes=5))
                for p, t in zip(preds, truth, strict=True)
            ],
        )


def test_worse_new_adapter_is_rolled_back_and_a_good_one_kept(sqlite_engine: Engine) -> None:
    serve(sqlite_engine, "old", 400, wrong_every=10, start=T0)  # 90 % right
    swap = T0 + timedelta(hours=1)
    serve(sqlite_engine, "bad", 200, wrong_every=3, start=swap)  # 66 % right
    serve(sqlite_engine, "good", 200, wrong_every=12, start=swap)  # 91 % right
    cfg = ProbationSettings(min_samples=100, max_accuracy_drop=0.02)
    old = observe(sqlite_engine, "old", LABELS, attributes=["gender"], min_group_size=30)
    assert old.samples == 400 and old.labelled_accuracy == 0.9
    assert set(old.bias) == {"dp_diff.gender", "accuracy_gap.gender"}
    bad = observe(sqlite_engine, "bad", LABELS, since=swap, min_group_size=30)
    decision = decide(old, bad, started=swap, now=swap + timedelta(minutes=30), settings=cfg)
    assert decision.action == "rollback" and "labelled accuracy 0.665 vs 0.900" in decision.reason
    good = observe(sqlite_engine, "good", LABELS, since=swap, min_group_size=30)
    kept = decide(old, good, started=swap, now=swap + timedelta(hours=2), settings=cfg)
    assert kept.action == "keep" and kept.final
    assert observe(sqlite_engine, "never-served", LABELS, min_group_size=30).samples == 0
