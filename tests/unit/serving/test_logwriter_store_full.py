"""The prediction log on a store whose disk is full: SQLite capped with ``max_page_count``
answers SQLITE_FULL exactly as a full disk does. Rows wait within the buffer's bound, the rest
are dropped with reason ``store_full``, the state says why, and writing resumes with space."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, event, text

from adaptd.metrics import new_metrics
from adaptd.serving.logwriter import PredictionLog
from tests.unit.serving.test_logwriter import BIG, DROPPED, _rows


def test_a_full_store_buffers_within_bounds_counts_store_full_and_resumes(
    sqlite_engine: Engine,
) -> None:
    with sqlite_engine.connect() as conn:
        pages = int(conn.execute(text("PRAGMA page_count")).scalar_one())
    cap = {"pages": pages}  # no room for one more page: the next insert fails

    @event.listens_for(sqlite_engine, "begin")
    def capped(conn: Any) -> None:
        conn.exec_driver_sql(f"PRAGMA max_page_count = {cap['pages']}")

    metrics = new_metrics()
    log = PredictionLog(
        sqlite_engine,
        metrics.log,
        buffer_rows=50,
        buffer_bytes=BIG,
        flush_ms=10,
        retry_initial_s=0.05,
        retry_max_s=0.2,
    )
    log.start()
    try:
        assert log.submit(_rows(50, "a")) == 50  # more than the free room in its pages
        deadline = time.monotonic() + 10
        while log.state().last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        state = log.state()
        assert state.last_error is not None and state.last_error.startswith("store full: ")
        assert not state.store_ok and state.queued == 50 and state.written == 0
        assert log.submit(_rows(5, "b")) == 0
        assert metrics.registry.get_sample_value(DROPPED, {"reason": "store_full"}) == 5
        assert metrics.registry.get_sample_value(DROPPED, {"reason": "buffer_full"}) == 0
        # Retried with backoff, not spinning: a few failed writes in half a second.
        time.sleep(0.5)
        errors = metrics.registry.get_sample_value("adaptd_prediction_log_write_errors_total")
        assert errors is not None and 1 <= errors <= 10
        # Space is freed: the buffered rows are written, the state clears.
        cap["pages"] = 1_000_000
        assert log.flush(timeout=10)
        state = log.state()
        assert state.written == 50 and state.last_error is None and state.queued == 0
    finally:
        log.stop(timeout=5)
