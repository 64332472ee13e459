from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event

from adaptd.metrics import Metrics, new_metrics
from adaptd.serving.batcher import Prediction
from adaptd.serving.logwriter import PredictionLog, make_row, text_hash
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _rows(n: int, prefix: str = "p", *, store_text: bool = True) -> list[dict[str, Any]]:
    pred = Prediction(
        label="positive",
        score=0.75,
        probabilities=(0.25, 0.75),
        embedding=np.arange(4, dtype=np.float32),
        adapter="v1",
        truncated=False,
    )
    return [
        make_row(
            prediction_id=f"{prefix}{i}",
            ts=NOW,
            text=f"text {i}",
            attributes={"group": "x"},
            prediction=pred,
            labels=("negative", "positive"),
            store_text=store_text,
            latency_ms=1.0,
        )
        for i in range(n)
    ]


@pytest.fixture
def metrics() -> Metrics:
    return new_metrics()


def _value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_rows_are_inserted_in_batches(sqlite_engine: Engine, metrics: Metrics) -> None:
    statements: list[int] = []

    @event.listens_for(sqlite_engine, "before_cursor_execute")
    def count(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
        if stmt.startswith("INSERT INTO predictions"):
            statements.append(len(params) if many else 1)

    log = PredictionLog(sqlite_engine, metrics, buffer_rows=1000, flush_ms=10_000, batch_rows=5)
    log.start()
    assert log.submit(_rows(12)) == 12
    assert log.flush(timeout=10)
    log.stop()
    assert repo.count_predictions(sqlite_engine) == 12
    assert statements == [5, 5, 2]
    assert _value(metrics, "adaptd_prediction_log_written_total") == 12
    stored = repo.recent_predictions(sqlite_engine, limit=1)[0]
    assert np.frombuffer(stored.embedding or b"", dtype=np.float16).tolist() == [0, 1, 2, 3]
    assert stored.probabilities == {"negative": 0.25, "positive": 0.75}


def test_only_the_hash_is_kept_without_store_text(sqlite_engine: Engine, metrics: Metrics) -> None:
    log = PredictionLog(sqlite_engine, metrics, buffer_rows=10, flush_ms=10)
    log.start()
    log.submit(_rows(1, store_text=False))
    log.stop()
    (stored,) = repo.recent_predictions(sqlite_engine)
    assert stored.text is None and stored.text_hash == text_hash("text 0")


def test_graceful_stop_flushes_every_buffered_row(sqlite_engine: Engine, metrics: Metrics) -> None:
    log = PredictionLog(sqlite_engine, metrics, buffer_rows=10_000, flush_ms=60_000)
    log.start()
    log.submit(_rows(300))
    log.stop(timeout=10)
    assert repo.count_predictions(sqlite_engine) == 300
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "shutdown"}) == 0


def test_store_down_buffers_then_drops_visibly_and_recovers(
    tmp_path: Path, metrics: Metrics
) -> None:
    # A store without the schema: every insert fails until the migration runs.
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    log = PredictionLog(
        engine, metrics, buffer_rows=10, flush_ms=1, retry_initial_s=0.01, retry_max_s=0.02
    )
    log.start()
    assert log.submit(_rows(15)) == 10
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "buffer_full"}) == 5
    assert not log.flush(timeout=0.3), "nothing can be written while the store is down"
    state = log.state()
    assert (state.store_ok, state.queued, state.dropped) == (False, 10, 5)
    assert "predictions" in (state.last_error or "")
    assert _value(metrics, "adaptd_prediction_log_write_errors_total") >= 1

    migrate.upgrade(engine)  # the store comes back
    assert log.flush(timeout=10)
    log.stop()
    assert repo.count_predictions(engine) == 10
    assert log.state().store_ok


def test_stop_with_the_store_down_counts_what_is_lost(tmp_path: Path, metrics: Metrics) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    log = PredictionLog(engine, metrics, buffer_rows=100, flush_ms=1, retry_initial_s=0.01)
    log.start()
    log.submit(_rows(7))
    log.stop(timeout=0.2)
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "shutdown"}) == 7
    assert log.state().queued == 0


def test_an_id_already_stored_is_dropped_and_the_rest_written(
    sqlite_engine: Engine, metrics: Metrics
) -> None:
    log = PredictionLog(sqlite_engine, metrics, buffer_rows=100, flush_ms=1)
    log.start()
    log.submit(_rows(2))
    assert log.flush(timeout=10)
    log.submit(_rows(3))  # p0 and p1 again, p2 new
    assert log.flush(timeout=10)
    log.stop()
    assert repo.count_predictions(sqlite_engine) == 3
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "duplicate_id"}) == 2


def test_claimed_ids_conflict_until_released(sqlite_engine: Engine, metrics: Metrics) -> None:
    log = PredictionLog(sqlite_engine, metrics, buffer_rows=100, flush_ms=1)
    assert log.claim_ids(["x", "y"]) == []
    assert log.claim_ids(["y", "z"]) == ["y"]
    assert log.pending_among(["x", "z"]) == {"x"}, "a refused claim reserves nothing"
    log.release_ids(["x", "y"])
    assert log.claim_ids(["y"]) == []


def test_the_writer_and_duplicate_handling_work_on_every_store(
    engine: Engine, metrics: Metrics
) -> None:
    log = PredictionLog(engine, metrics, buffer_rows=100, flush_ms=1, batch_rows=4)
    log.start()
    log.submit(_rows(6))
    assert log.flush(timeout=10)
    log.submit(_rows(7))  # p0..p5 again (dropped), p6 new
    assert log.flush(timeout=10)
    log.stop()
    assert repo.count_predictions(engine) == 7
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "duplicate_id"}) == 6
