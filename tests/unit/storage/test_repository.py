from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from adaptd.errors import NotFoundError
from adaptd.storage import repository as repo
from adaptd.storage.records import (
    AdapterRecord,
    Event,
    FeedbackRecord,
    MonitorResult,
    PredictionRecord,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def prediction(i: int, adapter: str = "v1", label: str = "positive") -> PredictionRecord:
    return PredictionRecord(
        id=f"p{i}",
        ts=T0 + timedelta(seconds=i),
        adapter=adapter,
        text=f"text {i}",
        text_hash=f"h{i}",
        label=label,
        score=0.9,
        probabilities={"negative": 0.1, "positive": 0.9},
        embedding=b"\x00\x3c" * 4,
        attributes={"group": "a" if i % 2 else "b"},
    )


def test_predictions_round_trip_with_timezone_and_bytes(engine):
    repo.insert_predictions(engine, [prediction(i) for i in range(5)])
    newest = repo.recent_predictions(engine, limit=2)
    assert [p.id for p in newest] == ["p4", "p3"]
    oldest_first = repo.recent_predictions(engine, limit=2, oldest_first=True)
    assert [p.id for p in oldest_first] == ["p3", "p4"]
    assert newest[0].ts == T0 + timedelta(seconds=4)
    assert newest[0].ts.tzinfo is not None
    assert newest[0].embedding == b"\x00\x3c" * 4
    assert newest[0].attributes == {"group": "b"}
    assert repo.count_predictions(engine) == 5


def test_time_range_and_adapter_filters(engine):
    repo.insert_predictions(engine, [prediction(i, "v1" if i < 3 else "v2") for i in range(6)])
    window = repo.recent_predictions(engine, since=T0 + timedelta(seconds=2), adapter="v2")
    assert sorted(p.id for p in window) == ["p3", "p4", "p5"]
    first = repo.first_predictions(engine, adapter="v2", limit=2)
    assert [p.id for p in first] == ["p3", "p4"]


def test_feedback_is_idempotent_and_joined(engine):
    repo.insert_predictions(engine, [prediction(i) for i in range(3)])
    fb = [FeedbackRecord(prediction_id="p1", label="negative", ts=T0 + timedelta(minutes=1))]
    with engine.begin() as conn:
        repo.upsert_feedback(conn, fb)
        repo.upsert_feedback(conn, fb)
    with engine.begin() as conn:
        repo.upsert_feedback(
            conn,
            [FeedbackRecord(prediction_id="p2", label="positive", ts=T0 + timedelta(minutes=2))],
        )
    labelled = repo.labelled_predictions(engine)
    assert [(x.prediction.id, x.true_label) for x in labelled] == [
        ("p1", "negative"),
        ("p2", "positive"),
    ]
    with engine.connect() as conn:
        assert repo.existing_prediction_ids(conn, ["p1", "zz"]) == {"p1"}


def adapter(version: str, minutes: int = 0) -> AdapterRecord:
    return AdapterRecord(
        version=version,
        status="candidate",
        path=f"/x/{version}",
        created=T0 + timedelta(minutes=minutes),
    )


def test_adapters_activate_exactly_one(engine):
    repo.add_adapter(engine, adapter("aaa111"))
    repo.add_adapter(engine, adapter("bbb222", 1))
    assert repo.add_adapter(engine, adapter("aaa111")).path == "/x/aaa111"  # idempotent
    assert repo.activate_adapter(engine, "aaa111", T0) is None
    assert repo.activate_adapter(engine, "bbb222", T0) == "aaa111"
    statuses = {a.version: a.status for a in repo.list_adapters(engine)}
    assert statuses == {"aaa111": "retired", "bbb222": "active"}
    active = repo.active_adapter(engine)
    assert active is not None and active.version == "bbb222"
    assert repo.get_adapter(engine, "bbb").version == "bbb222"
    with pytest.raises(NotFoundError, match="'zzz'"):
        repo.get_adapter(engine, "zzz")
    with pytest.raises(NotFoundError):
        repo.activate_adapter(engine, "nope", T0)


def test_ambiguous_adapter_prefix(engine):
    repo.add_adapter(engine, adapter("abc1"))
    repo.add_adapter(engine, adapter("abc2"))
    with pytest.raises(NotFoundError, match="ambiguous"):
        repo.get_adapter(engine, "abc")


def test_runs_monitor_results_policy_state_and_events(engine):
    run_id = repo.start_run(engine, now=T0, reason="drift", policy="default")
    repo.update_run(engine, run_id, status="failed", error="killed", finished=T0)
    run = repo.get_run(engine, run_id)
    assert (run.status, run.error, run.policy) == ("failed", "killed", "default")

    results = [
        MonitorResult(ts=T0 + timedelta(hours=h), signal=s, value=0.5, status="ok", n_current=10)
        for h in range(3)
        for s in ("drift.embedding.auc", "performance.accuracy")
    ]
    repo.add_monitor_results(engine, results)
    got = repo.monitor_results(
        engine, since=T0 + timedelta(hours=1), signals=["performance.accuracy"]
    )
    assert [r.ts for r in got] == [T0 + timedelta(hours=1), T0 + timedelta(hours=2)]

    repo.save_policy_states(engine, {"p": {"pending": 1}}, T0)
    repo.save_policy_states(engine, {"p": {"pending": 2}}, T0)
    assert repo.load_policy_states(engine) == {"p": {"pending": 2}}

    repo.add_events(engine, [Event(ts=T0, kind="trip", source="p", message="tripped")])
    assert [e.kind for e in repo.list_events(engine)] == ["trip"]


def test_naive_datetimes_are_refused(engine):
    naive = PredictionRecord(
        id="x",
        ts=datetime(2026, 1, 1),  # no tzinfo
        adapter="v",
        text="t",
        text_hash="h",
        label="positive",
        score=1.0,
        probabilities={},
    )
    with pytest.raises(Exception, match="naive datetime"):
        repo.insert_predictions(engine, [naive])


def test_reference_rows_replace_and_read_back_in_order(engine) -> None:
    from adaptd.storage.records import ReferenceRow

    def row(i: int, slice_: str) -> ReferenceRow:
        return ReferenceRow(
            adapter="v1",
            slice=slice_,
            position=i,
            text=f"text {i}",
            true_label="positive",
            label="negative" if i % 2 else "positive",
            probabilities={"negative": 0.2, "positive": 0.8},
            embedding=b"\x00\x3c" * 4,
            attributes={"gender": "f"},
        )

    assert repo.replace_reference_rows(engine, "v1", [row(0, "recent"), row(1, "golden")], T0) == 2
    assert repo.replace_reference_rows(engine, "v1", [row(i, "recent") for i in range(3)], T0) == 3
    rows = repo.reference_rows(engine, "v1")
    assert [(r.slice, r.position, r.label) for r in rows] == [
        ("recent", 0, "positive"), ("recent", 1, "negative"), ("recent", 2, "positive"),
    ]  # fmt: skip
    assert rows[0].embedding == b"\x00\x3c" * 4 and rows[0].attributes == {"gender": "f"}
    assert rows[0].created == T0 and rows[0].probabilities["positive"] == 0.8
    assert repo.reference_rows(engine, "v2") == []
