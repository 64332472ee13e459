from __future__ import annotations

import hashlib
import logging
import math
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event

from adaptd.metrics import Metrics, new_metrics
from adaptd.privacy.guard import TextGuard, keyed_hash
from adaptd.privacy.settings import TextMode
from adaptd.serving.batcher import Prediction
from adaptd.serving.logwriter import DropReason, PredictionLog, make_row, row_bytes
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BIG = 1 << 30
DROPPED = "adaptd_prediction_log_dropped_total"


KEY = b"k" * 32


def _rows(n: int, prefix: str = "p", *, mode: TextMode = "full") -> list[dict[str, Any]]:
    guard = TextGuard(mode=mode, key=KEY)
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
            text=guard.for_log(f"text {i}"),
            attributes={"group": "x"},
            prediction=pred,
            labels=("negative", "positive"),
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

    log = PredictionLog(
        sqlite_engine,
        metrics.log,
        buffer_bytes=BIG,
        buffer_rows=1000,
        flush_ms=10_000,
        batch_rows=5,
    )
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


def test_only_the_keyed_hash_is_logged_when_hashed(sqlite_engine: Engine, metrics: Metrics) -> None:
    log = PredictionLog(sqlite_engine, metrics.log, buffer_bytes=BIG, buffer_rows=10, flush_ms=10)
    log.start()
    log.submit(_rows(1, mode="hashed"))
    log.stop()
    (stored,) = repo.recent_predictions(sqlite_engine)
    assert stored.text is None and stored.text_hash == keyed_hash(KEY, "text 0")
    assert stored.text_hash != hashlib.sha256(b"text 0").hexdigest()


def test_graceful_stop_flushes_every_buffered_row(sqlite_engine: Engine, metrics: Metrics) -> None:
    log = PredictionLog(
        sqlite_engine, metrics.log, buffer_bytes=BIG, buffer_rows=10_000, flush_ms=60_000
    )
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
        engine,
        metrics.log,
        buffer_rows=10,
        buffer_bytes=BIG,
        flush_ms=1,
        retry_initial_s=0.01,
        retry_max_s=0.02,
    )
    log.start()
    assert log.submit(_rows(15)) == 10
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "buffer_full"}) == 5
    assert not log.flush(timeout=0.3), "nothing can be written while the store is down"
    state = log.state()
    assert (state.store_ok, state.queued, state.dropped["buffer_full"]) == (False, 10, 5)
    assert "predictions" in (state.last_error or "")
    assert _value(metrics, "adaptd_prediction_log_write_errors_total") >= 1

    migrate.upgrade(engine)  # the store comes back
    assert log.flush(timeout=10)
    log.stop()
    assert repo.count_predictions(engine) == 10
    assert log.state().store_ok


def test_stop_with_the_store_down_counts_what_is_lost(tmp_path: Path, metrics: Metrics) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'down.db'}")
    log = PredictionLog(
        engine, metrics.log, buffer_bytes=BIG, buffer_rows=100, flush_ms=1, retry_initial_s=0.01
    )
    log.start()
    log.submit(_rows(7))
    log.stop(timeout=0.2)
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "shutdown"}) == 7
    assert log.state().queued == 0


def test_an_id_already_stored_is_dropped_and_the_rest_written(
    sqlite_engine: Engine, metrics: Metrics
) -> None:
    log = PredictionLog(sqlite_engine, metrics.log, buffer_bytes=BIG, buffer_rows=100, flush_ms=1)
    log.start()
    log.submit(_rows(2))
    assert log.flush(timeout=10)
    log.submit(_rows(3))  # p0 and p1 again, p2 new
    assert log.flush(timeout=10)
    log.stop()
    assert repo.count_predictions(sqlite_engine) == 3
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "duplicate_id"}) == 2


def test_claimed_ids_conflict_until_released(sqlite_engine: Engine, metrics: Metrics) -> None:
    log = PredictionLog(sqlite_engine, metrics.log, buffer_bytes=BIG, buffer_rows=100, flush_ms=1)
    assert log.claim_ids(["x", "y"]) == []
    assert log.claim_ids(["y", "z"]) == ["y"]
    assert log.pending_among(["x", "z"]) == {"x"}, "a refused claim reserves nothing"
    log.release_ids(["x", "y"])
    assert log.claim_ids(["y"]) == []


def test_the_writer_and_duplicate_handling_work_on_every_store(
    engine: Engine, metrics: Metrics
) -> None:
    log = PredictionLog(
        engine, metrics.log, buffer_bytes=BIG, buffer_rows=100, flush_ms=1, batch_rows=4
    )
    log.start()
    log.submit(_rows(6))
    assert log.flush(timeout=10)
    log.submit(_rows(7))  # p0..p5 again (dropped), p6 new
    assert log.flush(timeout=10)
    log.stop()
    assert repo.count_predictions(engine) == 7
    assert _value(metrics, "adaptd_prediction_log_dropped_total", {"reason": "duplicate_id"}) == 6


# --------------------------------------------------------------------------- flush interval


def test_the_first_row_is_written_within_the_flush_interval(
    sqlite_engine: Engine, metrics: Metrics
) -> None:
    # Nothing calls flush() and the batch is far from full: only the flush timer can write it.
    log = PredictionLog(sqlite_engine, metrics.log, buffer_rows=100, buffer_bytes=BIG, flush_ms=50)
    log.start()
    try:
        for round_ in range(2):  # the second row arrives at an idle writer, as the first did
            submitted = time.monotonic()
            log.submit(_rows(1, prefix=f"r{round_}-"))
            while repo.count_predictions(sqlite_engine) == round_:
                assert time.monotonic() - submitted < 5, "the row waits for a flush() call"
                time.sleep(0.005)
            assert time.monotonic() - submitted < 1.0
    finally:
        log.stop()


def _thread_cpu_ticks(native_id: int) -> int:
    """User + system clock ticks a thread of this process has used (Linux /proc)."""
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_an_idle_writer_sleeps(sqlite_engine: Engine, metrics: Metrics) -> None:
    log = PredictionLog(sqlite_engine, metrics.log, buffer_rows=100, buffer_bytes=BIG, flush_ms=1)
    log.start()
    try:
        log.submit(_rows(1))
        assert log.flush(timeout=10)
        assert log._thread is not None and log._thread.native_id is not None
        # An idle writer blocks on its condition; a busy loop would use the whole second.
        before = _thread_cpu_ticks(log._thread.native_id)
        time.sleep(1.0)
        assert _thread_cpu_ticks(log._thread.native_id) - before <= 5  # ticks of 10 ms
    finally:
        log.stop()


# --------------------------------------------------------------------------- bounds and drops


def test_every_drop_reason_is_exported_at_zero_from_the_start(metrics: Metrics) -> None:
    engine = make_engine("sqlite://")
    PredictionLog(engine, metrics.log, buffer_rows=1, buffer_bytes=BIG, flush_ms=1)
    for reason in DropReason:
        labels = {"reason": reason.value}
        assert metrics.registry.get_sample_value(DROPPED, labels) == 0.0, reason
    engine.dispose()


def test_the_buffer_is_bounded_in_bytes(sqlite_engine: Engine, metrics: Metrics) -> None:
    rows = _rows(10)
    for row in rows:
        row["text"] = "x" * 100_000  # long texts fill the bytes bound long before the rows bound
    size = row_bytes(rows[0])
    log = PredictionLog(
        sqlite_engine, metrics.log, buffer_rows=1000, buffer_bytes=3 * size + 10, flush_ms=60_000
    )
    assert log.submit(rows) == 3
    assert log.state().queued_bytes == 3 * size
    assert _value(metrics, "adaptd_prediction_log_queued_bytes") == 3 * size
    assert _value(metrics, DROPPED, {"reason": "buffer_full"}) == 7
    assert log.pending_among([r["id"] for r in rows]) == {"p0", "p1", "p2"}
    log.start()
    log.stop()
    assert repo.count_predictions(sqlite_engine) == 3
    assert log.state().queued_bytes == 0


def _refused_rows(dialect: str) -> dict[str, dict[str, Any]]:
    """Rows each store refuses, by what is wrong with them."""
    if dialect == "sqlite":
        (nan,) = _rows(1, prefix="nan")
        nan["score"] = math.nan  # stored as NULL by SQLite: NOT NULL constraint
        return {"nan score": nan}
    nul, long_label, nan_json = _rows(3, prefix="bad")
    nul["text"] = "a NUL \x00 character"  # PostgreSQL text cannot hold NUL
    long_label["label"] = "l" * 100  # the column is VARCHAR(64)
    nan_json["probabilities"] = {"negative": math.nan, "positive": 1.0}  # NaN is not JSON
    return {"NUL": nul, "long label": long_label, "NaN in JSON": nan_json}


def test_rows_the_store_refuses_are_set_aside_and_the_rest_written(
    engine: Engine, metrics: Metrics, caplog: pytest.LogCaptureFixture
) -> None:
    bad = _refused_rows(engine.dialect.name)
    good = _rows(40)
    rows = good[:7] + list(bad.values()) + good[7:]
    log = PredictionLog(
        engine, metrics.log, buffer_rows=1000, buffer_bytes=BIG, flush_ms=60_000, batch_rows=16
    )
    log.start()
    with caplog.at_level(logging.WARNING, logger="adaptd.serving.logwriter"):
        log.submit(rows)
        assert log.flush(timeout=30), "a refused row must not block the rows behind it"
        log.submit(_rows(5, prefix="later"))  # and later predictions still get in
        assert log.flush(timeout=30)
    log.stop()
    stored = {p.id for p in repo.recent_predictions(engine, limit=1000)}
    assert stored == {r["id"] for r in good} | {f"later{i}" for i in range(5)}
    assert _value(metrics, DROPPED, {"reason": "invalid_row"}) == len(bad)
    assert _value(metrics, DROPPED, {"reason": "duplicate_id"}) == 0
    assert _value(metrics, "adaptd_prediction_log_written_total") == 45
    warnings = [r for r in caplog.records if "invalid_row" in r.getMessage()]
    assert len(warnings) == 1, "one line per reason, not one per row"
    state = log.state()
    assert state.dropped["invalid_row"] == len(bad) and state.store_ok


def test_a_store_outage_while_splitting_writes_each_row_once(
    sqlite_engine: Engine, metrics: Metrics
) -> None:
    rows = _rows(8)
    rows[5]["score"] = math.nan
    inserts: list[int] = []

    @event.listens_for(sqlite_engine, "before_cursor_execute")
    def outage(conn: Any, cursor: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
        if stmt.startswith("INSERT INTO predictions"):
            inserts.append(len(params) if many else 1)
            if len(inserts) == 3:  # the store goes away after the first half was written
                raise sqlite3.OperationalError("disk I/O error")

    log = PredictionLog(
        sqlite_engine,
        metrics.log,
        buffer_rows=100,
        buffer_bytes=BIG,
        flush_ms=1,
        retry_initial_s=0.01,
    )
    log.start()
    log.submit(rows)
    assert log.flush(timeout=10)
    log.stop()
    assert repo.count_predictions(sqlite_engine) == 7
    assert _value(metrics, "adaptd_prediction_log_written_total") == 7
    assert _value(metrics, DROPPED, {"reason": "invalid_row"}) == 1
    assert _value(metrics, DROPPED, {"reason": "duplicate_id"}) == 0
    assert _value(metrics, "adaptd_prediction_log_write_errors_total") == 1
    assert inserts[:2] == [8, 4], "the whole batch, then its first half"


def test_a_row_no_store_could_take_is_refused_without_blocking_the_batch(
    sqlite_engine: Engine, metrics: Metrics
) -> None:
    # A naive timestamp (and an attribute that is not JSON) fail while the row is encoded,
    # before any round trip: the row is set aside, its batch written.
    rows = _rows(6)
    rows[1]["ts"] = datetime(2026, 1, 1)
    rows[4]["attributes"] = {"group": object()}
    log = PredictionLog(sqlite_engine, metrics.log, buffer_rows=100, buffer_bytes=BIG, flush_ms=1)
    log.start()
    log.submit(rows)
    assert log.flush(timeout=10)
    log.stop()
    stored = {p.id for p in repo.recent_predictions(sqlite_engine, limit=100)}
    assert stored == {"p0", "p2", "p3", "p5"}
    assert _value(metrics, DROPPED, {"reason": "invalid_row"}) == 2
    assert log.state().store_ok
