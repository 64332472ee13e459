from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, text

from adaptd.storage import repository as repo
from adaptd.storage.log_insert import COLUMNS, PredictionInsert
from adaptd.storage.records import PredictionRecord

T0 = datetime(2026, 1, 1, 12, 30, 15, 123456, tzinfo=UTC)


def _records() -> list[PredictionRecord]:
    """Rows covering every kind of value the log stores: a text and none, attributes and
    none, a non-UTC timestamp, a timestamp object shared by two rows (one request), unicode."""
    shared = T0 + timedelta(seconds=1)
    base = PredictionRecord(
        id="",
        ts=T0,
        adapter="v1",
        text="a text",
        text_hash="h",
        label="positive",
        score=0.9,
        probabilities={"negative": 0.1, "positive": 0.9},
        embedding=b"\x00\x3c" * 4,
        attributes={"group": "a", "lang": "fr"},
        truncated=False,
        latency_ms=12.5,
    )
    return [
        dataclasses.replace(base, id="a"),
        dataclasses.replace(base, id="b", ts=shared, text=None, attributes={}, latency_ms=None),
        dataclasses.replace(base, id="c", ts=shared, truncated=True, text="naïve — 文字 \u2028"),
        dataclasses.replace(
            base,
            id="d",
            ts=datetime(2026, 1, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
            probabilities={"negative": 1e-30, "positive": 1.0},
            embedding=None,
        ),
    ]


def _stored(engine: Engine, ids: list[str]) -> list[tuple[Any, ...]]:
    """The raw column values, as the store holds them (JSON as text, timestamps as stored)."""
    casts = {"probabilities", "attributes"} if engine.dialect.name == "postgresql" else set()
    columns = ", ".join(f"{c}::text" if c in casts else c for c in COLUMNS if c != "id")
    with engine.connect() as conn:
        return [
            tuple(
                conn.execute(
                    text(f"SELECT {columns} FROM predictions WHERE id = :i"), {"i": i}
                ).one()
            )
            for i in ids
        ]


def test_rows_are_stored_exactly_as_sqlalchemy_core_stores_them(engine: Engine) -> None:
    records = _records()
    with engine.begin() as conn:
        repo.insert_prediction_rows(
            conn, [repo.prediction_row(dataclasses.replace(r, id=f"core-{r.id}")) for r in records]
        )
    insert = PredictionInsert(engine.dialect)
    with engine.begin() as conn:
        insert.execute(conn, [insert.params(repo.prediction_row(r)) for r in records])
    ids = [r.id for r in records]
    assert _stored(engine, ids) == _stored(engine, [f"core-{i}" for i in ids])
    back = {p.id: p for p in repo.recent_predictions(engine, limit=100)}
    for record in records:
        assert dataclasses.replace(back[record.id], seq=None) == dataclasses.replace(
            record, ts=record.ts.astimezone(UTC), attributes=record.attributes or {}
        )


def test_a_naive_timestamp_is_refused_before_the_store(engine: Engine) -> None:
    insert = PredictionInsert(engine.dialect)
    row = repo.prediction_row(dataclasses.replace(_records()[0], ts=datetime(2026, 1, 1)))
    with pytest.raises(ValueError, match="naive datetime"):
        insert.params(row)


def test_a_timestamp_is_converted_per_object_not_per_value(engine: Engine) -> None:
    # The cache keys on the object: a different object with another value is converted anew.
    insert = PredictionInsert(engine.dialect)
    first, second = _records()[:2]
    a = insert.params(repo.prediction_row(first))
    b = insert.params(repo.prediction_row(second))
    ts = COLUMNS.index("ts")
    assert a[ts] != b[ts]
    assert insert.params(repo.prediction_row(first))[ts] == a[ts]
