"""Why a store call failed, in one wording: a full disk is told apart from an unreachable store
(the operator frees space rather than restarting anything), on real errors where we can."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from adaptd.storage.engine import (
    describe_failure,
    log_store_failure,
    make_engine,
    store_full,
    store_outage,
)


def test_sqlite_at_its_size_limit_is_a_full_store(tmp_path: Path) -> None:
    # max_page_count makes SQLite answer SQLITE_FULL exactly as a full disk does.
    engine = make_engine(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (v BLOB)"))
        with pytest.raises(SQLAlchemyError) as caught, engine.begin() as conn:
            conn.execute(text("PRAGMA max_page_count = 3"))
            for _ in range(20):
                conn.execute(text("INSERT INTO t VALUES (randomblob(4000))"))
    finally:
        engine.dispose()
    assert store_full(caught.value)
    assert describe_failure(caught.value) == (
        "store full: database or disk is full (free space on the store's disk)"
    )


def test_postgres_disk_full_and_enospc_are_a_full_store_and_an_outage_is_not() -> None:
    disk_full = OperationalError("INSERT", {}, psycopg.errors.DiskFull("could not extend file"))
    assert store_full(disk_full)
    assert describe_failure(disk_full).startswith("store full: could not extend file")
    enospc = OSError(errno.ENOSPC, "No space left on device")
    assert store_full(enospc)
    down = OperationalError(
        "SELECT 1", {}, psycopg.OperationalError("connection failed: password=hunter2 refused")
    )
    assert not store_full(down)
    assert describe_failure(down) == "store unreachable: connection failed: password=*** refused"


def test_an_outage_is_logged_in_one_line_and_a_bug_with_its_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("adaptd.test.outage")
    (tmp_path / "gone").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path / 'gone' / 'adaptd.db'}")
    (tmp_path / "gone").rmdir()  # the store's disk went away under the daemon
    try:
        with caplog.at_level(logging.ERROR, logger=log.name):
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
            except SQLAlchemyError as e:
                assert store_outage(e)
                log_store_failure(log, "check failed", e)
            try:
                {}["missing"]
            except KeyError as e:
                assert not store_outage(e)
                log_store_failure(log, "check failed", e)
    finally:
        engine.dispose()
    outage, bug = caplog.records
    assert outage.getMessage() == "check failed: store unreachable: unable to open database file"
    # Rendered as a handler renders it: adaptd's redacting log filter, installed by any earlier
    # test of this process that configured logging, turns exc_info into a redacted exc_text.
    assert "Traceback" not in logging.Formatter().format(outage)
    assert bug.getMessage() == "check failed"
    rendered = logging.Formatter().format(bug)
    assert "Traceback" in rendered and "KeyError: 'missing'" in rendered
