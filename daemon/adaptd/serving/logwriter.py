"""The prediction log writer: the request path hands rows over, a background thread stores them.

An ORM commit per row caps ingest near 2k rows/s; here one driver ``executemany`` of tuples per
batch through an insert compiled once (:mod:`adaptd.storage.log_insert`), one transaction per
batch. The writer wakes on the first row submitted into an empty buffer, so no
row waits longer than ``flush_ms`` (plus one write) for the store: that is all a ``kill -9`` can
lose. A batch is written when it is ``batch_rows`` long, when its oldest row is ``flush_ms`` old,
when someone calls :meth:`PredictionLog.flush`, or at shutdown.

Two kinds of failure are told apart, because they need opposite answers:

- The store is down (connection refused, disk full, locked): the rows are fine, so the writer
  retries the oldest batch with exponential backoff. The buffer is bounded in rows and in bytes;
  once it is full new rows are dropped (reason ``buffer_full``) rather than growing memory until
  the daemon dies.
- The store refuses some rows (a NUL character on PostgreSQL, a label longer than its column, a
  NaN score on SQLite): retrying the same batch would block every later row forever. The batch is
  split in halves until the refused rows are alone; they are set aside and counted (reason
  ``duplicate_id`` when the id is already stored, else ``invalid_row``), the rest are written.

Every drop reason in :class:`DropReason` is exported at zero from the start, so an alert on
``increase(adaptd_prediction_log_dropped_total[...]) > 0`` fires on the very first drop.

Prediction ids are unique in the store. Ids a request claims are held in :attr:`_pending` from
before the forward pass until their row is settled (written or dropped), so two requests racing
with the same client id cannot both pass the check, and feedback for a prediction still in the
buffer can find it (see :meth:`PredictionLog.pending_among`).
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Engine
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from adaptd.liveness import Heartbeat
from adaptd.privacy.guard import StoredText
from adaptd.serving.batcher import Prediction
from adaptd.serving.metrics import LogMetrics
from adaptd.storage import repository as repo
from adaptd.storage.engine import describe_failure, store_full
from adaptd.storage.log_insert import PredictionInsert
from adaptd.storage.records import PredictionRecord

logger = logging.getLogger(__name__)

#: Python object overhead of one buffered row beyond its strings and bytes (dict, datetime,
#: floats, the buffer entry): about 1,100 bytes measured with tracemalloc on MiniLM rows, where
#: a whole row with a 100-character text takes about 2.1 kB. The byte bound is an estimate meant
#: to cap memory, not an exact account.
ROW_OVERHEAD_BYTES = 1200


class DropReason(enum.StrEnum):
    """Why a prediction row never reached the store (the ``reason`` label of the drop counter)."""

    #: the buffer was full (store down or too slow for the traffic)
    BUFFER_FULL = "buffer_full"
    #: the buffer was full because the store's disk is full (free space there, not here)
    STORE_FULL = "store_full"
    #: a prediction with the same id is already stored (another replica, a replay)
    DUPLICATE_ID = "duplicate_id"
    #: the store refused the row's values (NUL character, too long, NaN)
    INVALID_ROW = "invalid_row"
    #: still buffered when the shutdown deadline passed (or submitted after it)
    SHUTDOWN = "shutdown"


#: the store refused these rows, not the connection: split the batch instead of retrying it
_ROW_ERRORS = (IntegrityError, DataError)


def make_row(
    *,
    prediction_id: str,
    ts: datetime,
    text: StoredText,
    attributes: Mapping[str, str],
    prediction: Prediction,
    labels: Sequence[str],
    latency_ms: float | None,
) -> dict[str, Any]:
    """The insert parameters of one served prediction (embedding as float16 bytes); ``text``
    is what :meth:`TextGuard.for_log` lets the log keep of it."""
    record = PredictionRecord(
        id=prediction_id,
        ts=ts,
        adapter=prediction.adapter,
        text=text.text,
        text_hash=text.text_hash,
        label=prediction.label,
        score=prediction.score,
        probabilities=dict(zip(labels, prediction.probabilities, strict=True)),
        embedding=np.asarray(prediction.embedding, dtype=np.float16).tobytes(),
        attributes=dict(attributes),
        truncated=prediction.truncated,
        latency_ms=latency_ms,
        text_features=text.features,
    )
    return repo.prediction_row(record)


#: a dict item beyond the length of its key and string value (a probability's float included)
ITEM_OVERHEAD_BYTES = 40


def row_bytes(row: Mapping[str, Any]) -> int:
    """Estimated memory of one buffered row: its strings and bytes plus a fixed overhead.

    On the request path for every row, so it reads the columns that can be long by name
    instead of testing every value's type (``isinstance`` against ABCs and ``str()`` of floats
    cost 14 us a row, more than encoding the row for the store); ids, version names, labels and
    hashes are bounded by their columns and covered by the fixed overhead.
    """
    text, embedding, attributes = row["text"], row["embedding"], row["attributes"]
    size = ROW_OVERHEAD_BYTES + ITEM_OVERHEAD_BYTES * len(row["probabilities"])
    if text is not None:
        size += len(text)
    if embedding is not None:
        size += len(embedding)
    if row["text_features"]:  # hashed mode: a handful of floats in place of the text
        size += ITEM_OVERHEAD_BYTES * len(row["text_features"])
    if attributes:
        size += ITEM_OVERHEAD_BYTES * len(attributes)
        for k, v in attributes.items():
            size += len(k) + (len(v) if type(v) is str else 0)
    return size


@dataclass(frozen=True, slots=True, kw_only=True)
class LogState:
    running: bool
    queued: int
    queued_bytes: int
    written: int
    dropped: Mapping[str, int]
    lag_s: float
    last_error: str | None
    store_ok: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "queued_rows": self.queued,
            "queued_bytes": self.queued_bytes,
            "written_rows": self.written,
            "dropped_rows": sum(self.dropped.values()),
            "dropped_by_reason": dict(self.dropped),
            "lag_seconds": round(self.lag_s, 3),
            "store_ok": self.store_ok,
            "last_error": self.last_error,
        }


@dataclass(slots=True)
class _Entry:
    queued_at: float
    row: dict[str, Any]
    size: int
    #: the row's DBAPI parameters, encoded once by the writer (a retry or a split reuses them)
    params: tuple[Any, ...] | None = field(default=None)
    #: set by the writer once the row's fate is known: "written" or a DropReason. A batch is
    #: settled only when every row has one, so a store outage in the middle of splitting a batch
    #: neither writes a row twice nor counts a written row as a duplicate on the retry.
    outcome: str | None = field(default=None)


_WRITTEN = "written"


class PredictionLog:
    """Bounded buffer + one writer thread inserting batches of pre-encoded tuples."""

    def __init__(
        self,
        engine: Engine,
        metrics: LogMetrics,
        *,
        buffer_rows: int,
        buffer_bytes: int,
        flush_ms: float,
        batch_rows: int = 5000,
        retry_initial_s: float = 0.1,
        retry_max_s: float = 5.0,
    ) -> None:
        self._engine = engine
        self._insert = PredictionInsert(engine.dialect)
        self._metrics = metrics
        self.buffer_rows = buffer_rows
        self.buffer_bytes = buffer_bytes
        self.flush_s = flush_ms / 1000.0
        self.batch_rows = batch_rows
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._buffer: deque[_Entry] = deque()
        self._bytes = 0
        self._pending: set[str] = set()
        self._cond = threading.Condition()
        self._submitted = 0  # rows accepted into the buffer, ever
        self._settled = 0  # rows written or dropped after being accepted
        self._flush_to = 0  # a flush asks for everything up to this count
        self._written = 0
        self._dropped: Counter[str] = Counter({reason.value: 0 for reason in DropReason})
        self._warned: set[str] = set()
        self._last_error: str | None = None
        self._store_full = False  # the last write failed for lack of disk space
        self._stopping = False
        self._stopped = False
        self._deadline: float | None = None
        self._thread: threading.Thread | None = None
        #: the watchdog's view of the writer thread: alive, and no store call hanging
        self.heartbeat = Heartbeat("log writer")
        for reason in DropReason:
            metrics.dropped.labels(reason.value)
        metrics.queued.set(0)
        metrics.queued_bytes.set(0)

    def configure(self, *, buffer_rows: int, buffer_bytes: int, flush_ms: float) -> None:
        """Apply new limits (SIGHUP); rows already buffered stay."""
        with self._cond:
            self.buffer_rows = buffer_rows
            self.buffer_bytes = buffer_bytes
            self.flush_s = flush_ms / 1000.0
            self._cond.notify_all()

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
        """The ids among ``ids`` that are buffered or claimed and not yet settled. An id leaves
        this set only after its row is committed, so asking here first and the store second
        never misses a row that moves from one to the other in between."""
        with self._cond:
            return {i for i in ids if i in self._pending}

    # ------------------------------------------------------------------ request path

    def submit(self, rows: Sequence[dict[str, Any]]) -> int:
        """Buffer rows for the store; returns how many were accepted (the rest are counted as
        dropped). Never blocks, never raises."""
        now = time.monotonic()
        sizes = [row_bytes(row) for row in rows]
        with self._cond:
            closed = self._stopped or (self._stopping and self._thread is None)
            accepted = 0
            if not closed:
                room_rows = self.buffer_rows - len(self._buffer)
                room_bytes = self.buffer_bytes - self._bytes
                while accepted < len(rows) and accepted < room_rows:
                    if sizes[accepted] > room_bytes:
                        break
                    room_bytes -= sizes[accepted]
                    accepted += 1
            was_empty = not self._buffer
            full_store = self._store_full
            for row, size in zip(rows[:accepted], sizes[:accepted], strict=True):
                self._buffer.append(_Entry(now, row, size))
                self._bytes += size
            self._pending.update(row["id"] for row in rows[:accepted])
            self._submitted += accepted
            refused = rows[accepted:]
            if refused:
                self._pending.difference_update(row["id"] for row in refused)
            self._metrics.queued.set(len(self._buffer))
            self._metrics.queued_bytes.set(self._bytes)
            # The writer sleeps without a timeout on an empty buffer: the first row must wake it
            # to start its flush timer; later rows only matter when they complete a batch.
            if accepted and (was_empty or len(self._buffer) >= self.batch_rows):
                self._cond.notify_all()
        if refused:
            reason = _refusal(closed=closed, store_full=full_store)
            self._count_drops(Counter({reason.value: len(refused)}))
            self._warn_once(
                reason,
                "prediction log closed"
                if reason is DropReason.SHUTDOWN
                else f"prediction log buffer full ({self.buffer_rows} rows, "
                f"{self.buffer_bytes} bytes)"
                + (": the store's disk is full" if reason is DropReason.STORE_FULL else ""),
            )
        return accepted

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
            lag = time.monotonic() - self._buffer[0].queued_at if self._buffer else 0.0
            return LogState(
                running=self._thread is not None and self._thread.is_alive(),
                queued=len(self._buffer),
                queued_bytes=self._bytes,
                written=self._written,
                dropped=dict(self._dropped),
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
            if thread.is_alive():
                logger.error("prediction log: the writer is stuck in a store call; abandoning it")
        with self._cond:
            left = len(self._buffer)
            self._buffer.clear()
            self._bytes = 0
            self._pending.clear()
            self._settled += left
            self._thread = None
            self._stopped = True
            self._cond.notify_all()
        if left:
            self._count_drops(Counter({DropReason.SHUTDOWN.value: left}))
            logger.error("prediction log: %d rows could not be written before shutdown", left)
        self._metrics.queued.set(0)
        self._metrics.queued_bytes.set(0)
        self._metrics.lag.set(0)

    # ------------------------------------------------------------------ writer thread

    def _next_batch(self) -> list[_Entry] | None:
        """Block until a batch is due; None when stopped and empty."""
        with self._cond:
            while True:
                if self._stopped:
                    return None
                if self._buffer:
                    age = time.monotonic() - self._buffer[0].queued_at
                    self._metrics.lag.set(age)
                    due = (
                        len(self._buffer) >= self.batch_rows
                        or age >= self.flush_s
                        or self._flush_to > self._settled
                        or self._stopping
                    )
                    if due:
                        # islice: indexing a deque walks it from the nearer end every time
                        return list(itertools.islice(self._buffer, self.batch_rows))
                    self._cond.wait(self.flush_s - age)
                elif self._stopping:
                    return None
                else:
                    self._metrics.lag.set(0)
                    self._cond.wait()

    def _run(self) -> None:
        backoff = self._retry_initial_s
        while (batch := self._next_batch()) is not None:
            try:
                with self.heartbeat.working():  # a store call that never returns is stuck
                    self._store([e for e in batch if e.outcome is None])
            except SQLAlchemyError as e:
                reason = describe_failure(e)
                self._metrics.write_errors.inc()
                with self._cond:
                    first = self._last_error is None
                    self._last_error = reason
                    self._store_full = store_full(e)
                if first:
                    logger.error("prediction log: store write failed, retrying: %s", reason)
                if not self._wait_backoff(backoff):
                    return
                backoff = min(backoff * 2, self._retry_max_s)
                continue
            backoff = self._retry_initial_s
            self._settle(batch)

    def _encode(self, entries: list[_Entry]) -> list[_Entry]:
        """Give each entry its parameters; a row no store could take (a naive timestamp, an
        attribute that is not JSON) is refused here, alone, without a round trip."""
        ready = []
        for entry in entries:
            if entry.params is None:
                try:
                    entry.params = self._insert.params(entry.row)
                except (TypeError, ValueError) as e:
                    entry.outcome = DropReason.INVALID_ROW
                    self._warn_once(DropReason.INVALID_ROW, f"prediction log: bad row: {e}")
                    continue
            ready.append(entry)
        return ready

    def _store(self, entries: list[_Entry]) -> None:
        """Write ``entries`` in one transaction; when the store refuses some of them, split until
        the refused rows are alone and set them aside. A store-level error propagates (the
        caller retries the entries left without an outcome)."""
        entries = self._encode(entries)
        if not entries:
            return
        try:
            with self._engine.begin() as conn:
                self._insert.execute(conn, [e.params for e in entries if e.params is not None])
        except _ROW_ERRORS as e:
            if len(entries) == 1:
                self._refuse(entries[0], e)
                return
            if isinstance(e, IntegrityError) and self._drop_stored_ids(entries):
                self._store([e for e in entries if e.outcome is None])
                return
            middle = len(entries) // 2
            self._store(entries[:middle])
            self._store(entries[middle:])
            return
        for entry in entries:
            entry.outcome = _WRITTEN

    def _drop_stored_ids(self, entries: list[_Entry]) -> bool:
        """Mark rows whose id is already stored, or repeated in ``entries``, as duplicates (one
        query instead of splitting down to each of them). Returns whether any was found."""
        ids = [e.row["id"] for e in entries]
        with self._engine.connect() as conn:
            seen = set(repo.existing_prediction_ids(conn, ids))
        found = 0
        for entry in entries:
            if entry.row["id"] in seen:
                entry.outcome = DropReason.DUPLICATE_ID
                found += 1
            seen.add(entry.row["id"])
        return found > 0

    def _refuse(self, entry: _Entry, error: SQLAlchemyError) -> None:
        reason = DropReason.INVALID_ROW
        if isinstance(error, IntegrityError):
            with self._engine.connect() as conn:
                if repo.existing_prediction_ids(conn, [entry.row["id"]]):
                    reason = DropReason.DUPLICATE_ID
        entry.outcome = reason
        self._warn_once(reason, f"prediction log: store refused a row: {_first_line(error)}")

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

    def _settle(self, batch: list[_Entry]) -> None:
        outcomes = Counter(e.outcome for e in batch)
        written = outcomes.pop(_WRITTEN, 0)
        drops = Counter({str(reason): n for reason, n in outcomes.items()})
        with self._cond:
            if self._stopped:  # stop() gave up on this writer and counted its rows
                return
            for entry in batch:
                self._buffer.popleft()
                self._bytes -= entry.size
            self._pending.difference_update(e.row["id"] for e in batch)
            self._settled += len(batch)
            self._written += written
            self._last_error = None
            self._store_full = False
            self._metrics.queued.set(len(self._buffer))
            self._metrics.queued_bytes.set(self._bytes)
            self._cond.notify_all()
        self._metrics.written.inc(written)
        if drops:
            self._count_drops(drops)

    def _count_drops(self, drops: Counter[str]) -> None:
        with self._cond:
            self._dropped.update(drops)
        for reason, n in drops.items():
            self._metrics.dropped.labels(reason).inc(n)

    def _warn_once(self, reason: DropReason, message: str) -> None:
        """One log line per drop reason for the life of the daemon; the counter keeps the
        count, and a flood of identical lines would bury everything else."""
        with self._cond:
            if reason.value in self._warned:
                return
            self._warned.add(reason.value)
        logger.warning("%s (dropped, reason %s; further drops are only counted)", message, reason)


def _refusal(*, closed: bool, store_full: bool) -> DropReason:
    """Why rows the buffer could not take are dropped."""
    if closed:
        return DropReason.SHUTDOWN
    return DropReason.STORE_FULL if store_full else DropReason.BUFFER_FULL


def _first_line(error: SQLAlchemyError) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]
