"""Rows for retention and forgetting tests, written with the store's own insert paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert

from adaptd.config import Settings
from adaptd.retention.settings import RetentionSettings
from adaptd.storage import repository as repo
from adaptd.storage import tables as t
from adaptd.storage.records import AdapterRecord

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def settings_for(state: Path, url: str, **retention: object) -> Settings:
    return Settings(
        state_dir=state,
        store={"url": url},  # type: ignore[arg-type]
        retention=RetentionSettings(**retention),  # type: ignore[arg-type]
    )


def add_adapter(
    engine: Engine,
    version: str,
    *,
    status: str,
    path: Path,
    parent: str | None = None,
    promoted: datetime | None = None,
    created: datetime = NOW - timedelta(days=400),
    warm_start: bool = True,
) -> None:
    repo.add_adapter(
        engine,
        AdapterRecord(
            version=version,
            status=status,
            path=str(path),
            created=created,
            parent=parent,
            promoted=promoted,
            config={"retraining": {"warm_start": warm_start}},
        ),
    )


def add_predictions(
    engine: Engine,
    n: int,
    *,
    start: datetime,
    step: timedelta,
    adapter: str = "a1",
    prefix: str = "p",
    with_feedback: bool = True,
    batch: int = 20_000,
) -> None:
    """``n`` predictions from ``start`` every ``step`` (with a label each), in big executemanys."""
    for lo in range(0, n, batch):
        rows = [
            {
                "id": f"{prefix}{i}",
                "ts": start + i * step,
                "adapter": adapter,
                "text": f"text number {prefix}{i}",
                "text_hash": f"h{i}",
                "label": "positive",
                "score": 0.9,
                "probabilities": {"negative": 0.1, "positive": 0.9},
                "embedding": b"\x00" * 64,
                "attributes": {"group": "a" if i % 2 else "b"},
                "truncated": False,
                "latency_ms": 1.0,
            }
            for i in range(lo, min(n, lo + batch))
        ]
        feedback = [
            {"prediction_id": r["id"], "label": "negative", "ts": r["ts"], "source": None}
            for r in rows
        ]
        with engine.begin() as conn:
            conn.execute(insert(t.predictions), rows)
            if with_feedback:
                conn.execute(insert(t.feedback), feedback)


def add_history(engine: Engine, n: int, *, start: datetime, step: timedelta) -> None:
    """``n`` monitor results and events, one every ``step`` from ``start``."""
    with engine.begin() as conn:
        conn.execute(
            insert(t.monitor_results),
            [
                {"ts": start + i * step, "signal": "drift.x", "value": 0.1, "status": "ok"}
                for i in range(n)
            ],
        )
        conn.execute(
            insert(t.events),
            [
                {"ts": start + i * step, "kind": "trip", "source": "test", "message": "m"}
                for i in range(n)
            ],
        )


def count(engine: Engine, table: str) -> int:
    from sqlalchemy import func, select

    with engine.connect() as conn:
        return int(
            conn.execute(select(func.count()).select_from(t.metadata.tables[table])).scalar_one()
        )
