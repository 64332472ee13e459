"""Locks that hold across every process sharing the store: the retrain lock (the daemon's retrain
job and ``adaptd retrain`` never train at once, on any host) and the control role's leader lease
(:mod:`adaptd.control.leader`).

PostgreSQL: a session-level advisory lock on a connection of its own. The server releases it when
that session ends, so a holder killed with ``kill -9`` (its socket closes) frees it at once, and
a holder whose host vanished frees it when the server's TCP keepalives give up (set on the
session below: about 11 s). Holding the connection alive *is* holding the lock, so renewing is a
ping; the ``store_locks`` row is only written to say who holds it. The converse matters as much:
when the server restarts, every session ends and every advisory lock with it, while the holder
goes on believing it leads until its next renewal; a standby that reconnects first would then
lead too. So a watcher thread blocks on the lock session's socket: the server writes to an idle
session only to end it, and the holder learns of the loss at once (``on_lost``), before the
server is even back.

SQLite (one host): the ``store_locks`` row with an unexpired lease is the lock. The holder renews
it every ``ttl_s / 3``; a holder that died stops renewing, so its lease expires after ``ttl_s``
and the next caller takes it. A holder paused longer than ``ttl_s`` (a suspended laptop) finds
its lease taken at its next renewal and must stop acting: :class:`KeptLock` says so in
``lost``.

Nothing here reads the clock: ``now`` comes from the caller.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select as io_select
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, delete, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from adaptd.errors import LockBusyError
from adaptd.storage import tables as t

logger = logging.getLogger(__name__)

RETRAIN_LOCK = "retrain"
LEADER_LOCK = "control-leader"
#: the retrain lock's lease on SQLite: a retrain whose process died blocks the next one at most
#: this long, and its holder renews it every 20 s, far from any pause a training child causes.
RETRAIN_LEASE_S = 60.0
#: server-side TCP keepalive of a PostgreSQL lock session: 5 s idle, then 3 probes 2 s apart, so
#: the lock of a host that vanished without closing its socket is freed about 11 s later.
_PG_KEEPALIVE = {"tcp_keepalives_idle": 5, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}


@dataclass(frozen=True, slots=True, kw_only=True)
class LockHolder:
    """Who holds a lock, as the ``store_locks`` row says (on PostgreSQL: informational)."""

    name: str
    holder: str
    acquired: datetime
    expires: datetime | None


def holder_id() -> str:
    """This process, as a lock holder: ``host:pid:nonce`` (a restarted pid is a new holder)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class StoreLock(Protocol):
    name: str
    holder: str
    #: how the lock is held, for status pages: ``advisory`` or ``lease``
    kind: str
    #: called (from another thread) when a held lock is seen lost between renewals; only a
    #: lock that can see that (advisory) calls it, the others tell at :meth:`renew`
    on_lost: Callable[[], None] | None

    def acquire(self, now: datetime) -> bool:
        """Take the lock if it is free (or already ours); never blocks."""
        ...

    def renew(self, now: datetime) -> bool:
        """Keep a held lock; False when it was lost (the caller must stop acting on it)."""
        ...

    def release(self) -> None:
        """Give the lock up (a no-op when not held); never raises."""
        ...


def store_lock(engine: Engine, name: str, *, holder: str, ttl_s: float) -> StoreLock:
    """The lock ``name`` for this store's backend (``ttl_s`` is the SQLite lease)."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, name, holder=holder)
    return LeaseLock(engine, name, holder=holder, ttl_s=ttl_s)


def describe(engine: Engine, name: str) -> LockHolder | None:
    """The recorded holder of ``name``, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(t.store_locks).where(t.store_locks.c.name == name)).first()
    if row is None:
        return None
    return LockHolder(name=row.name, holder=row.holder, acquired=row.acquired, expires=row.expires)


def _dead_here(holder: str) -> bool:
    """Whether ``holder`` (see :func:`holder_id`) is a process on this host that no longer
    exists. A reused pid reads as alive: the lease then simply runs out."""
    host, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # exists, owned by someone else
    return False


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(t.store_locks)
    return sqlite.insert(t.store_locks)


class LeaseLock:
    """The lock as a lease row (SQLite, a single host)."""

    kind = "lease"

    def __init__(self, engine: Engine, name: str, *, holder: str, ttl_s: float) -> None:
        self.engine, self.name, self.holder = engine, name, holder
        self.ttl = timedelta(seconds=ttl_s)
        self.on_lost: Callable[[], None] | None = None

    def acquire(self, now: datetime) -> bool:
        lock = t.store_locks.c
        with self.engine.begin() as conn:
            # The UPDATE comes first so that on SQLite the transaction holds the write lock
            # before it reads anything: two callers cannot both see the lease free.
            renewed = conn.execute(
                update(t.store_locks)
                .where(lock.name == self.name, lock.holder == self.holder)
                .values(expires=now + self.ttl)
            )
            if renewed.rowcount == 1:
                return True
            taken = conn.execute(
                update(t.store_locks)
                .where(lock.name == self.name, or_(lock.expires.is_(None), lock.expires < now))
                .values(holder=self.holder, acquired=now, expires=now + self.ttl)
            )
            if taken.rowcount == 1:
                return True
            current = conn.execute(
                select(lock.holder).where(lock.name == self.name)
            ).scalar_one_or_none()
            if current is not None and _dead_here(current):
                # SQLite is one host: a holder on it whose process is gone (kill -9, a crash)
                # cannot renew, so its lease is taken now instead of when it expires.
                dead = conn.execute(
                    update(t.store_locks)
                    .where(lock.name == self.name, lock.holder == current)
                    .values(holder=self.holder, acquired=now, expires=now + self.ttl)
                )
                if dead.rowcount == 1:
                    logger.warning("lock %s: took it from %s (process gone)", self.name, current)
                    return True
            inserted = conn.execute(
                _insert(conn)
                .values(name=self.name, holder=self.holder, acquired=now, expires=now + self.ttl)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            return bool(inserted.rowcount == 1)

    def renew(self, now: datetime) -> bool:
        lock = t.store_locks.c
        try:
            with self.engine.begin() as conn:
                result = conn.execute(
                    update(t.store_locks)
                    .where(lock.name == self.name, lock.holder == self.holder)
                    .values(expires=now + self.ttl)
                )
        except SQLAlchemyError as e:
            # Unknown whether the lease still stands: act as if lost (it may expire meanwhile).
            logger.error("lock %s: cannot renew the lease: %s", self.name, e)
            return False
        return bool(result.rowcount == 1)

    def release(self) -> None:
        lock = t.store_locks.c
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    delete(t.store_locks).where(lock.name == self.name, lock.holder == self.holder)
                )
        except SQLAlchemyError as e:
            logger.warning("lock %s: release failed (the lease will expire): %s", self.name, e)


def _advisory_key(name: str) -> int:
    """A stable signed 64-bit key per lock name (advisory locks are keyed by bigint)."""
    digest = hashlib.sha256(f"adaptd:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class AdvisoryLock:
    """The lock as a PostgreSQL session-level advisory lock on a dedicated connection."""

    kind = "advisory"

    def __init__(self, engine: Engine, name: str, *, holder: str) -> None:
        self.engine, self.name, self.holder = engine, name, holder
        self.key = _advisory_key(name)
        self.on_lost: Callable[[], None] | None = None
        # Its own engine without a pool: the session that holds the lock must never be handed
        # to other work, and closing it must really end the session.
        self._lock_engine = create_engine(
            engine.url, poolclass=NullPool, connect_args={"connect_timeout": 5}
        )
        self._conn: Connection | None = None
        # The session is used by the caller (acquire, renew, release) and by the watcher: one
        # at a time (neither SQLAlchemy's connection nor the wire protocol is shared safely).
        self._session = threading.Lock()

    def acquire(self, now: datetime) -> bool:
        if self._conn is not None:
            return self.renew(now)
        conn = self._lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            for setting, value in _PG_KEEPALIVE.items():
                conn.execute(text(f"SET {setting} = {int(value)}"))
            got = conn.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
            ).scalar_one()
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        with self._session:
            self._conn = conn
        self._watch(conn)
        self._record(now)
        return True

    def _watch(self, conn: Connection) -> None:
        """Start the thread that sees the session end (see the module's docstring)."""
        try:
            fd = conn.connection.dbapi_connection.fileno()  # type: ignore[union-attr]
        except (AttributeError, SQLAlchemyError, OSError):  # not psycopg: renewals only
            return
        threading.Thread(
            target=self._watch_session,
            args=(conn, fd),
            name=f"adaptd-lock-{self.name}-watch",
            daemon=True,
        ).start()

    def _watch_session(self, conn: Connection, fd: int) -> None:
        while self._conn is conn:
            try:
                readable = io_select.select([fd], [], [], 1.0)[0]
            except (OSError, ValueError):  # the descriptor was closed under us: released
                return
            # A reply to a renewal in flight also wakes us; the ping below then simply passes.
            if readable and self._conn is conn and not self._ping(conn):
                callback = self.on_lost
                if callback is not None:
                    callback()
                return

    def _ping(self, conn: Connection) -> bool:
        """Whether the session ``conn`` still stands (closing it when not)."""
        with self._session:
            if self._conn is not conn:
                return False
            try:
                conn.execute(text("SELECT 1"))
            except SQLAlchemyError as e:
                logger.error("lock %s: its session is gone, so is the lock: %s", self.name, e)
                self._close()
                return False
        return True

    def _record(self, now: datetime) -> None:
        try:
            with self.engine.begin() as conn:
                stmt = postgresql.insert(t.store_locks).values(
                    name=self.name, holder=self.holder, acquired=now, expires=None
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["name"],
                        set_={"holder": self.holder, "acquired": now, "expires": None},
                    )
                )
        except SQLAlchemyError as e:  # only informational: the advisory lock is what counts
            logger.warning("lock %s: cannot record the holder: %s", self.name, e)

    def renew(self, now: datetime) -> bool:
        conn = self._conn
        return conn is not None and self._ping(conn)

    def release(self) -> None:
        with self._session:
            conn = self._conn
            if conn is None:
                return
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                with self.engine.begin() as other:
                    other.execute(
                        delete(t.store_locks).where(
                            t.store_locks.c.name == self.name,
                            t.store_locks.c.holder == self.holder,
                        )
                    )
            except SQLAlchemyError as e:
                logger.warning(
                    "lock %s: release failed (closing its session frees it): %s", self.name, e
                )
            finally:
                self._close()

    def _close(self) -> None:
        """Drop the session (the caller holds ``_session``); the watcher stops on seeing it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except SQLAlchemyError:
                conn.invalidate()
        self._lock_engine.dispose()


class KeptLock:
    """A held lock kept by a background thread.

    ``lost`` is set while the lock is not known to be ours: a renewal failed, or (advisory) the
    watcher saw the session end, as when the store restarts. A store restart must not throw away
    a retrain that trained for minutes, so the thread then tries every ``regain_s`` to take the
    lock back, and clears ``lost`` when it does. When another holder took it meanwhile, the loss
    is final: ``taken`` is set and ``on_taken`` called, and the holder must stop acting on it.
    """

    def __init__(
        self,
        lock: StoreLock,
        *,
        renew_s: float,
        clock: Callable[[], datetime],
        regain_s: float = 1.0,
    ) -> None:
        self.lock, self.renew_s, self.regain_s, self.clock = lock, renew_s, regain_s, clock
        self.lost = threading.Event()
        self.taken = threading.Event()
        self.on_taken: Callable[[], None] | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        lock.on_lost = self._seen_lost
        self._thread = threading.Thread(
            target=self._keep, name=f"adaptd-lock-{lock.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def _seen_lost(self) -> None:
        logger.error("lock %s lost by %s (its session ended)", self.lock.name, self.lock.holder)
        self.lost.set()
        self._wake.set()  # try to take it back now, not at the next renewal

    def _keep(self) -> None:
        while True:
            self._wake.wait(self.regain_s if self.lost.is_set() else self.renew_s)
            self._wake.clear()
            if self._stop.is_set() or self.taken.is_set():
                return
            if self.lost.is_set():
                self.regain()
            else:
                self._renew()

    def _renew(self) -> bool:
        """Renew the held lock; a failed renewal marks it lost."""
        if self.lock.renew(self.clock()):
            return True
        logger.error("lock %s lost by %s", self.lock.name, self.lock.holder)
        self.lost.set()
        return False

    def confirm(self) -> bool:
        """Whether the lock is ours right now, asked of the store (a renewal), not of the last
        renewal: the holder calls it before each step that must be made by one process only."""
        if not self.lost.is_set() and not self.taken.is_set() and self._renew():
            return True
        return self.regain()

    def regain(self) -> bool:
        """Whether the lock is ours (again); a lost lock is taken back if nobody else holds it.
        False while the store cannot be reached; sets ``taken`` when another holder has it."""
        if self.taken.is_set():
            return False
        if not self.lost.is_set():
            return True
        try:
            got = self.lock.acquire(self.clock())
        except SQLAlchemyError as e:
            logger.debug("lock %s: cannot take it back yet: %s", self.lock.name, e)
            return False
        if got:
            logger.warning("lock %s: taken back by %s", self.lock.name, self.lock.holder)
            self.lost.clear()
            return True
        logger.error(
            "lock %s: another holder took it while %s had lost it", self.lock.name, self.lock.holder
        )
        self.taken.set()
        callback = self.on_taken
        if callback is not None:
            callback()
        return False

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        self.lock.release()


@contextmanager
def retrain_lock(
    engine: Engine, *, clock: Callable[[], datetime], holder: str | None = None
) -> Iterator[KeptLock]:
    """Hold the store's retrain lock for the block, or raise :class:`LockBusyError` naming who
    holds it. Both the daemon's retrain job and ``adaptd retrain`` go through here."""
    lock = store_lock(engine, RETRAIN_LOCK, holder=holder or holder_id(), ttl_s=RETRAIN_LEASE_S)
    if not lock.acquire(clock()):
        current = describe(engine, RETRAIN_LOCK)
        by = f" by {current.holder} since {current.acquired.isoformat()}" if current else ""
        raise LockBusyError(f"another retrain is running (the retrain lock is held{by})")
    kept = KeptLock(lock, renew_s=RETRAIN_LEASE_S / 3, clock=clock)
    kept.start()
    try:
        yield kept
    finally:
        kept.stop()
