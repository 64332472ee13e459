"""Store-level locks on both backends: one holder at a time, freed by release, by a lease that
runs out (SQLite) or a session that ends (PostgreSQL), and by a holder process that is gone."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from adaptd.errors import LockBusyError
from adaptd.storage import locks
from adaptd.storage import tables as t
from adaptd.storage.locks import LeaseLock, describe, retrain_lock, store_lock
from tests.pg import PostgresServer, restartable_postgres

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_one_holder_at_a_time_until_it_releases(engine: Engine) -> None:
    a = store_lock(engine, "x", holder="host:1:a", ttl_s=10)
    b = store_lock(engine, "x", holder="host:2:b", ttl_s=10)
    assert a.acquire(T0)
    assert a.acquire(T0)  # already ours
    assert not b.acquire(T0)
    assert a.renew(T0 + timedelta(seconds=5))
    holder = describe(engine, "x")
    assert holder is not None and holder.holder == "host:1:a"
    # Another name is another lock.
    assert store_lock(engine, "y", holder="host:2:b", ttl_s=10).acquire(T0)
    a.release()
    assert describe(engine, "x") is None
    assert b.acquire(T0 + timedelta(seconds=6))
    assert not a.renew(T0 + timedelta(seconds=7))
    b.release()


def test_a_lease_that_is_not_renewed_expires_and_its_holder_learns_it(
    sqlite_engine: Engine,
) -> None:
    a = LeaseLock(sqlite_engine, "x", holder="host:1:a", ttl_s=10)
    b = LeaseLock(sqlite_engine, "x", holder="host:2:b", ttl_s=10)
    assert a.acquire(T0)
    assert a.renew(T0 + timedelta(seconds=8))  # now valid until T0 + 18 s
    assert not b.acquire(T0 + timedelta(seconds=17))
    assert b.acquire(T0 + timedelta(seconds=19))
    assert not a.renew(T0 + timedelta(seconds=20))
    assert not a.acquire(T0 + timedelta(seconds=20))


def test_a_lease_held_by_a_dead_process_on_this_host_is_taken_at_once(
    sqlite_engine: Engine,
) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = f"{locks.socket.gethostname()}:{child.pid}:abcdef"
    assert LeaseLock(sqlite_engine, "x", holder=dead, ttl_s=60).acquire(T0)
    me = LeaseLock(sqlite_engine, "x", holder=locks.holder_id(), ttl_s=60)
    assert me.acquire(T0 + timedelta(seconds=1))
    # A live process here, or a holder on another host, keeps its lease until it expires.
    alive = f"{locks.socket.gethostname()}:{locks.os.getpid()}:abcdef"
    assert LeaseLock(sqlite_engine, "z", holder=alive, ttl_s=60).acquire(T0)
    assert not LeaseLock(sqlite_engine, "z", holder="other:2:b", ttl_s=60).acquire(T0)
    other_host = LeaseLock(sqlite_engine, "w", holder=f"elsewhere:{child.pid}:x", ttl_s=60)
    assert other_host.acquire(T0)
    assert not LeaseLock(sqlite_engine, "w", holder="other:2:b", ttl_s=60).acquire(T0)


@pytest.mark.postgres
def test_an_advisory_lock_is_freed_when_its_session_ends(pg_database: str) -> None:
    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    engine = make_engine(pg_database)
    migrate.upgrade(engine)
    try:
        a = locks.AdvisoryLock(engine, "x", holder="host:1:a")
        b = locks.AdvisoryLock(engine, "x", holder="host:2:b")
        assert a.acquire(T0)
        assert not b.acquire(T0)
        # The holder's connection dies as with kill -9: the server frees the lock.
        conn = a._conn
        assert conn is not None
        conn.invalidate()
        assert not a.renew(T0)
        assert b.acquire(T0)
        holder = describe(engine, "x")
        assert holder is not None and holder.holder == "host:2:b"
        b.release()
        assert describe(engine, "x") is None
    finally:
        engine.dispose()


def test_the_retrain_lock_names_its_holder_to_a_second_caller(engine: Engine) -> None:
    with retrain_lock(engine, clock=lambda: T0, holder="daemon-host:42:abc") as kept:
        assert not kept.lost.is_set()
        with (
            pytest.raises(LockBusyError, match="another retrain is running.*daemon-host:42:abc"),
            retrain_lock(engine, clock=lambda: T0),
        ):
            pass
    with retrain_lock(engine, clock=lambda: T0):
        pass


restartable = pytest.fixture(name="restartable")(restartable_postgres)


@pytest.mark.postgres
def test_a_server_restart_ends_the_lock_and_its_holder_learns_it_at_once(
    restartable: PostgresServer,
) -> None:
    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    engine = make_engine(restartable.url)
    migrate.upgrade(engine)
    try:
        lost = threading.Event()
        a = locks.AdvisoryLock(engine, "x", holder="host:1:a")
        a.on_lost = lost.set
        assert a.acquire(T0)
        with retrain_lock(engine, clock=lambda: T0) as kept:
            restartable.stop("fast")  # as a service restart: every session is ended
            # Long before any renewal (the retrain lock renews every 20 s): the watcher saw it.
            assert lost.wait(10)
            assert kept.lost.wait(10)
        assert not a.renew(T0)
        restartable.start()
        b = locks.AdvisoryLock(engine, "x", holder="host:2:b")
        assert b.acquire(T0)
        assert not a.acquire(T0)  # one holder, whoever asked first after the restart
        b.release()
        assert a.acquire(T0)
        a.release()
    finally:
        engine.dispose()


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_a_kept_lock_whose_renewal_failed_is_taken_back_when_nobody_else_holds_it(
    sqlite_engine: Engine,
) -> None:
    lock = LeaseLock(sqlite_engine, "x", holder="host:1:a", ttl_s=60)
    assert lock.acquire(T0)
    kept = locks.KeptLock(lock, renew_s=0.05, regain_s=0.5, clock=lambda: T0)
    taken: list[bool] = []
    kept.on_taken = lambda: taken.append(True)
    kept.start()
    try:
        with sqlite_engine.begin() as conn:  # as if the store had lost the row (a restore)
            conn.execute(t.store_locks.delete())
        # Renewal finds no row: lost; half a second later the free lock is taken back.
        assert _wait(kept.lost.is_set)
        assert _wait(lambda: not kept.lost.is_set())
        holder = describe(sqlite_engine, "x")
        assert holder is not None and holder.holder == "host:1:a"
        assert not kept.taken.is_set() and not taken
    finally:
        kept.stop()
    assert describe(sqlite_engine, "x") is None


def test_a_kept_lock_another_holder_took_is_lost_for_good_and_says_so(
    sqlite_engine: Engine,
) -> None:
    lock = LeaseLock(sqlite_engine, "x", holder="host:1:a", ttl_s=60)
    assert lock.acquire(T0)
    kept = locks.KeptLock(lock, renew_s=0.05, regain_s=0.05, clock=lambda: T0)
    taken = threading.Event()
    kept.on_taken = taken.set
    kept.start()
    try:
        with sqlite_engine.begin() as conn:  # its lease ran out while it was paused; b took it
            conn.execute(t.store_locks.delete())
        assert LeaseLock(sqlite_engine, "x", holder="elsewhere:2:b", ttl_s=60).acquire(T0)
        assert taken.wait(10)
        assert kept.lost.is_set() and kept.taken.is_set()
        assert not kept.regain()
    finally:
        kept.stop()
    holder = describe(sqlite_engine, "x")
    assert holder is not None and holder.holder == "elsewhere:2:b"  # stop freed only its own


@pytest.mark.postgres
def test_after_a_server_restart_the_retrain_lock_is_taken_back_unless_another_took_it(
    restartable: PostgresServer,
) -> None:
    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    engine = make_engine(restartable.url)
    migrate.upgrade(engine)
    try:
        with retrain_lock(engine, clock=lambda: T0) as kept:
            restartable.stop("fast")
            assert kept.lost.wait(10)
            restartable.start()
            # Taken back within a second or two of the server's return: a 10-s store restart
            # does not throw away the retrain that holds it, and nobody else can take it now.
            assert _wait(lambda: not kept.lost.is_set(), timeout=15)
            assert not kept.taken.is_set()
            assert not locks.AdvisoryLock(engine, locks.RETRAIN_LOCK, holder="b").acquire(T0)

        # Another process asked first after the restart: the loss is final, and said.
        a = locks.AdvisoryLock(engine, "x", holder="host:1:a")
        assert a.acquire(T0)
        kept = locks.KeptLock(a, renew_s=60, regain_s=60, clock=lambda: T0)
        taken = threading.Event()
        kept.on_taken = taken.set
        kept.start()
        restartable.stop("fast")
        assert kept.lost.wait(10)
        restartable.start()
        b = locks.AdvisoryLock(engine, "x", holder="host:2:b")
        assert _wait(lambda: _try(b), timeout=15)
        assert not kept.regain()
        assert kept.taken.is_set() and taken.is_set()
        kept.stop()
        b.release()
    finally:
        engine.dispose()


def _try(lock: locks.AdvisoryLock) -> bool:
    try:
        return lock.acquire(T0)
    except SQLAlchemyError:  # the server is still starting
        return False
