"""The prediction log writer: the request path hands rows over, a background thread stores them.

An ORM commit per row caps ingest near 2k rows/s; here one Core ``executemany`` per batch, one
transaction per batch. The buffer is bounded: when the store is down, the writer retries the
oldest batch with exponential backoff, and once the buffer is full new rows are dropped, counted
in ``adaptd_prediction_log_dropped_total{reason="buffer_full"}`` and shown in /v1/status, rather
than growing memory until the daemon dies. A graceful shutdown flushes everything.

Prediction ids are unique in the store. Ids a request claims are held in :attr:`_pending` from
before the forward pass until their row is committed, so two requests racing with the same client
id cannot both pass the check, and feedback for a prediction still in the buffer can wait for it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from adaptd.liveness import Heartbeat
from adaptd.metrics import Metrics
from adaptd.serving.batcher import Prediction
from adaptd.storage import repository as repo
from adaptd.storage.records import PredictionRecord

logger = logging.getLogger(__name__)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_row(
    *,
    prediction_id: str,
    ts: datetime,
    text: str,
    attributes: Mapping[str, str],
    prediction: Prediction,
    labels: Sequence[str],
    store_text: bool,
    latency_ms: float | None,
) -> dict[str, Any]:
    """The insert parameters of one served prediction (embedding as float16 bytes)."""
    record = PredictionRecord(
        id=prediction_id,
        ts=ts,
        adapter=prediction.adapter,
        text=text if store_text else None,
        text_hash=text_hash(text),
        label=prediction.label,
        score=prediction.score,
        probabilities=dict(zip(labels, prediction.probabilities, strict=True)),
        embedding=np.asarray(prediction.embedding, dtype=np.float16).tobytes(),
        attributes=dict(attributes),
        truncated=prediction.truncated,
        latency_ms=latency_ms,
    )
    return repo.prediction_row(record)


@dataclass(frozen=True, slots=True, kw_only=True)
class LogState:
    running: bool
    queued: int
    written: int
    dropped: int
    lag_s: float
    last_error: str | None
    store_ok: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "queued_rows": self.queued,
            "written_rows": self.written,
            "dropped_rows": self.dropped,
            "lag_seconds": round(self.lag_s, 3),
            "store_ok": self.store_ok,
            "last_error": self.last_error,
        }


class PredictionLog:
    """Bounded buffer + one writer thread inserting batches with SQLAlchemy Core."""

    def __init__(
        self,
        engine: Engine,
        metrics: Metrics,
        *,
        buffer_rows: int,
        flush_ms: float,
        batch_rows: int = 5000,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self.buffer_rows = buffer_rows
        self.flush_s = flush_ms / 1000.0
        self.batch_rows = batch_rows
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._buffer: deque[tuple[float, dict[str, Any]]] = deque()
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._submitted = 0  # rows accepted into the buffer, ever
        self._settled = 0  # rows written or dropped after being accepted
        self._flush_to = 0  # a flush asks for everything up to this count
        self._written = 0
        self._dropped = 0
        self._last_error: str | None = None
        self._stopping = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        #: the watchdog's view of the writer thread: alive, and no store call hanging
        self.heartbeat = Heartbeat("log writer")

    # ------------------------------------------------------------------ ids

    def claim_ids(self, ids: Iterable[str]) -> list[str]:
        """Reserve client-provided ids; returns those already taken by a buffered prediction
        or a request in flight (then nothing is reserved)."""
        wanted = list(ids)
        with self._cond:
            taken = [i for i in wanted if i in self._pending]
            if not taken:
                self._pending.update(wanted)
        return taken

    def release_ids(self, ids: Iterable[str]) -> None:
        """Give back ids claimed by a request that ended without logging them."""
        with self._cond:
            self._pending.difference_update(ids)

    def pending_among(self, ids: Iterable[str]) -> set[str]:
        with self._cond:
            return {i for i in ids if i in self._pending}

    # ------------------------------------------------------------------ request path

    def submit(self, rows: Sequence[dict[str, Any]]) -> int:
        """Buffer rows for the store; returns how many were accepted (the rest are counted as
        dropped because the buffer is full). Never blocks, never raises."""
        now = time.monotonic()
        with self._cond:
            room = max(0, self.buffer_rows - len(self._buffer))
            if self._stopping and self._thread is None:
                room = 0
            accepted = rows[:room]
            refused = rows[room:]
            self._buffer.extend((now, row) for row in accepted)
            self._pending.update(row["id"] for row in accepted)
            self._submitted += len(accepted)
            if refused:
                self._pending.difference_update(row["id"] for row in refused)
                self._dropped += len(refused)
            self._metrics.log_queued.set(len(self._buffer))
            if len(self._buffer) >= self.batch_rows:
                self._cond.notify()
        if refused:
            self._metrics.log_dropped.labels("buffer_full").inc(len(refused))
            logger.warning(
                "prediction log buffer full (%d rows): dropped %d rows",
                self.buffer_rows,
                len(refused),
            )
        return len(accepted)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row buffered before this call is written (or dropped)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            target = self._submitted
            self._flush_to = max(self._flush_to, target)
            self._cond.notify_all()
            while self._settled < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None:
                    return self._settled >= target
                self._cond.wait(remaining)
        return True

    def state(self) -> LogState:
        with self._cond:
            lag = time.monotonic() - self._buffer[0][0] if self._buffer else 0.0
            return LogState(
                running=self._thread is not None and self._thread.is_alive(),
                queued=len(self._buffer),
                written=self._written,
                dropped=self._dropped,
                lag_s=lag,
                last_error=self._last_error,
                store_ok=self._last_error is None,
            )

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="adaptd-logwriter", daemon=True)
            self.heartbeat.thread = self._thread
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Write what is buffered (retrying within ``timeout``), then stop; rows still unwritten
        at the deadline are counted as dropped with reason ``shutdown``."""
        with self._cond:
            self._stopping = True
            self._deadline = time.monotonic() + timeout
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout + 1.0)
        with self._cond:
            left = len(self._buffer)
            self._buffer.clear()
            self._pending.clear()
            self._dropped += left
            self._settled += left
            self._thread = None
            self._cond.notify_all()
        if left:
            self._metrics.log_dropped.labels("shutdown").inc(left)
            logger.error("prediction log: %d rows could not be written before shutdown", left)
        self._metrics.log_queued.set(0)
        self._metrics.log_lag.set(0)

    # ------------------------------------------------------------------ writer thread

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Block until a batch is due; None when stopped and empty."""
        with self._cond:
            while True:
                if self._buffer:
                    age = time.monotonic() - self._buffer[0][0]
                    self._metrics.log_lag.set(age)
                    due = (
                        len(self._buffer) >= self.batch_rows
                        or age >= self.flush_s
                        or self._flush_to > self._settled
                        or self._stopping
                    )
                    if due:
                        n = min(self.batch_rows, len(self._buffer))
                        return [self._buffer[i][1] for i in range(n)]
                    self._cond.wait(self.flush_s - age)
                elif self._stopping:
                    return None
                else:
                    self._metrics.log_lag.set(0)
                    self._cond.wait()

    def _run(self) -> None:
        backoff = self._retry_initial_s
        while (batch := self._next_batch()) is not None:
            try:
                with self.heartbeat.working():  # a store call that never returns is stuck
                    written = self._write(batch)
            except SQLAlchemyError as e:
                reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
                self._metrics.log_write_errors.inc()
                with self._cond:
                    first = self._last_error is None
                    self._last_error = reason
                if first:
                    logger.error("prediction log: store write failed, retrying: %s", reason)
                if not self._wait_backoff(backoff):
                    return
                backoff = min(backoff * 2, self._retry_max_s)
                continue
            backoff = self._retry_initial_s
            self._settle(batch, written=written)

    def _wait_backoff(self, seconds: float) -> bool:
        """Sleep before a retry (woken early by stop); False when the shutdown deadline passed."""
        with self._cond:
            until = time.monotonic() + seconds
            if self._deadline is not None:
                until = min(until, self._deadline)
            while (remaining := until - time.monotonic()) > 0:
                self._cond.wait(remaining)
                if self._stopping and self._deadline is not None:
                    until = min(until, self._deadline)
            return self._deadline is None or time.monotonic() < self._deadline

    def _write(self, batch: list[dict[str, Any]]) -> int:
        """Insert ``batch`` in one transaction; returns the rows written."""
        try:
            with self._engine.begin() as conn:
                repo.insert_prediction_rows(conn, batch)
            return len(batch)
        except IntegrityError:
            # A prediction id already in the store (another replica, a restart): keep the
            # first, drop the rest of that id, and write the others.
            ids = [row["id"] for row in batch]
            with self._engine.connect() as conn:
                existing = repo.existing_prediction_ids(conn, ids)
            seen: set[str] = set(existing)
            fresh = []
            for row in batch:
                if row["id"] not in seen:
                    seen.add(row["id"])
                    fresh.append(row)
            duplicates = len(batch) - len(fresh)
            if fresh:
                with self._engine.begin() as conn:
                    repo.insert_prediction_rows(conn, fresh)
            self._metrics.log_dropped.labels("duplicate_id").inc(duplicates)
            logger.warning("prediction log: dropped %d rows with duplicate ids", duplicates)
            return len(fresh)

    def _settle(self, batch: list[dict[str, Any]], *, written: int) -> None:
        with self._cond:
            for _ in batch:
                self._buffer.popleft()
            self._pending.difference_update(row["id"] for row in batch)
            self._settled += len(batch)
            self._written += written
            self._dropped += len(batch) - written
            self._last_error = None
            self._metrics.log_queued.set(len(self._buffer))
            self._cond.notify_all()
        self._metrics.log_written.inc(written)
