"""Probation in the store (SQLite and PostgreSQL): every promoter starts one, a check after a
"restart" (a fresh engine) resumes it, and it never undoes a promotion made meanwhile."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adaptd.adapters import registry
from adaptd.errors import ActiveChangedError
from adaptd.modeling.base import BaseModelInfo, inspect_base
from adaptd.retraining import probation
from adaptd.retraining.settings import ProbationSettings
from adaptd.signals import Signal, Status
from adaptd.storage import probations
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine
from adaptd.storage.records import FeedbackRecord, MonitorResult, PredictionRecord
from tests.unit.adapters.builders import LABELS, build_adapter, build_base, variant

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WATCH = probation.Watch(
    settings=ProbationSettings(window_s=3600, min_samples=50, max_accuracy_drop=0.02),
    labels=LABELS,
    min_group_size=30,
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(scope="module")
def base_and_sources(tmp_path_factory: pytest.TempPathFactory) -> tuple[BaseModelInfo, list[Path]]:
    root = tmp_path_factory.mktemp("probation")
    tiny = build_base(root / "bert")
    first = build_adapter(tiny, root / "v0")
    return inspect_base(str(tiny), LABELS), [first] + [
        variant(first, root / f"v{i}", f"v{i}") for i in (1, 2)
    ]


@pytest.fixture
def versions(
    engine: Engine, tmp_path: Path, base_and_sources: tuple[BaseModelInfo, list[Path]]
) -> list[str]:
    base, sources = base_and_sources
    return [
        registry.import_adapter(
            engine, tmp_path / "adapters", s, base=base, labels=LABELS, now=at(i)
        ).version
        for i, s in enumerate(sources)
    ]


def serve(engine: Engine, adapter: str, n: int, wrong_every: int, start: datetime) -> None:
    """``n`` predictions of ``adapter`` with feedback, one in ``wrong_every`` wrong."""
    preds = [
        PredictionRecord(
            id=f"{adapter[:8]}-{start.timestamp()}-{i}",
            ts=start + timedelta(seconds=i),
            adapter=adapter,
            text=f"t{i}",
            text_hash=str(i),
            label=LABELS[(i + (i % wrong_every == 0)) % 2],
            score=0.9,
            probabilities={},
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


def rollback_with(engine: Engine) -> Callable[[probations.ProbationRecord, str], object]:
    def roll_back(running: probations.ProbationRecord, reason: str) -> object:
        return registry.rollback(
            engine,
            at(90),
            reason=reason,
            to=running.previous,
            expect_active=running.version,
            source="probation",
        )

    return roll_back


def test_every_promotion_that_replaces_a_version_starts_one(
    engine: Engine, versions: list[str]
) -> None:
    v0, v1, v2 = versions
    registry.promote(engine, v0, at(10), reason="first", source="cli")
    assert probations.running(engine) is None, "nothing to compare the first adapter with"
    registry.promote(engine, v1, at(11), reason="approval", source="http")
    running = probations.running(engine)
    assert running is not None
    assert (running.version, running.previous, running.source) == (v1, v0, "http")
    # A later promotion supersedes it: only the newest one is judged.
    registry.promote(engine, v2, at(12), reason="policy", source="retraining")
    newest = probations.running(engine)
    assert newest is not None and (newest.version, newest.previous) == (v2, v1)
    first = next(p for p in probations.history(engine) if p.id == running.id)
    assert first.status == "superseded" and first.finished == at(12)


def test_a_worse_adapter_is_rolled_back_after_a_restart(
    engine: Engine, store_url: str, versions: list[str]
) -> None:
    v0, v1, _ = versions
    registry.promote(engine, v0, at(0), reason="first")
    serve(engine, v0, 400, wrong_every=10, start=at(1))  # 90 % right
    registry.promote(engine, v1, at(30), reason="cli", source="cli")
    serve(engine, v1, 200, wrong_every=3, start=at(31))  # 66 % right
    # The daemon restarts: nothing of the probation was kept in memory.
    fresh = make_engine(store_url)
    try:
        outcome = probation.check(fresh, at(60), [], WATCH, rollback=rollback_with(fresh))
    finally:
        fresh.dispose()
    assert outcome is not None and outcome.status == "rolled_back", outcome
    assert "labelled accuracy" in outcome.reason
    active = repo.active_adapter(engine)
    assert active is not None and active.version == v0
    assert probations.running(engine) is None
    assert probations.history(engine)[0].status == "rolled_back"
    assert probation.check(engine, at(61), [], WATCH, rollback=rollback_with(engine)) is None


def test_it_never_undoes_a_promotion_made_meanwhile(engine: Engine, versions: list[str]) -> None:
    v0, v1, v2 = versions
    registry.promote(engine, v0, at(0), reason="first")
    serve(engine, v0, 400, wrong_every=10, start=at(1))
    registry.promote(engine, v1, at(30), reason="policy")
    serve(engine, v1, 200, wrong_every=3, start=at(31))
    # An operator rolls back by hand: the probation ends without action at the next check.
    registry.rollback(engine, at(40), reason="operator")
    outcome = probation.check(engine, at(41), [], WATCH, rollback=rollback_with(engine))
    assert outcome is not None and outcome.status == "superseded"
    active = repo.active_adapter(engine)
    assert active is not None and active.version == v0
    kinds = [e.kind for e in repo.list_events(engine)]
    assert kinds.count("rolled_back") == 1 and "probation_ended" in kinds

    # The race: the operator promotes between the check's read and its rollback.
    registry.promote(engine, v2, at(50), reason="policy")
    serve(engine, v2, 200, wrong_every=3, start=at(51))

    def operator_first(running: probations.ProbationRecord, reason: str) -> object:
        registry.promote(engine, v1, at(60), reason="operator", force=True)
        return rollback_with(engine)(running, reason)

    outcome = probation.check(engine, at(61), [], WATCH, rollback=operator_first)
    assert outcome is not None and outcome.status == "superseded"
    active = repo.active_adapter(engine)
    assert active is not None and active.version == v1, "the operator's promotion stands"
    with pytest.raises(ActiveChangedError):
        registry.rollback(engine, at(62), reason="late", to=v0, expect_active=v2)


def test_the_label_free_estimate_rolls_back_without_labels(
    engine: Engine, versions: list[str]
) -> None:
    v0, v1, _ = versions
    registry.promote(engine, v0, at(0), reason="first")
    # The monitors stored the previous adapter's estimate before the swap ...
    repo.add_monitor_results(
        engine,
        [
            MonitorResult(
                ts=at(20),
                signal=probation.ESTIMATE,
                value=0.88,
                status="ok",
                adapter=v0,
                n_current=500,
            )
        ],
    )
    registry.promote(engine, v1, at(30), reason="policy")
    # ... and this check estimates the new one lower, on enough served predictions.
    signals = [
        Signal(
            name=probation.ESTIMATE,
            ts=at(45),
            status=Status.OK,
            value=0.80,
            n_reference=500,
            n_current=300,
            adapter=v1,
        )
    ]
    outcome = probation.check(engine, at(45), signals, WATCH, rollback=rollback_with(engine))
    assert outcome is not None and outcome.status == "rolled_back"
    assert outcome.reason.startswith("estimated accuracy 0.800 vs 0.880")


def test_a_good_adapter_is_kept_at_the_end_of_the_window(
    engine: Engine, versions: list[str]
) -> None:
    v0, v1, _ = versions
    registry.promote(engine, v0, at(0), reason="first")
    serve(engine, v0, 300, wrong_every=10, start=at(1))
    registry.promote(engine, v1, at(30), reason="policy")
    serve(engine, v1, 300, wrong_every=12, start=at(31))
    early = probation.check(engine, at(40), [], WATCH, rollback=rollback_with(engine))
    assert early is not None and early.status == "running"
    late = probation.check(engine, at(30 + 61), [], WATCH, rollback=rollback_with(engine))
    assert late is not None and late.status == "passed"
    passed = [e for e in repo.list_events(engine) if e.kind == "probation_passed"]
    assert len(passed) == 1 and v1[:12] in passed[0].message
