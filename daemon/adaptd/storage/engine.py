"""Engines: SQLite in WAL mode by default, PostgreSQL for scale-out; a clear error when the store
cannot be reached, and one wording for why a store call failed (:func:`describe_failure`)."""

from __future__ import annotations

import errno
import logging
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from adaptd.errors import StoreUnreachableError
from adaptd.security import make_private_file, mask_secrets, mask_url

if TYPE_CHECKING:
    from adaptd.config import Settings


def _sqlite_pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # WAL lets the log writer append while monitors read; NORMAL sync is durable across process
    # crashes (not power loss) and is what keeps batched ingest above 50k rows/s.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, *, pool_size: int = 5, connect_timeout_s: float = 5.0) -> Engine:
    """Create an engine for ``url``; raises :class:`StoreUnreachableError` for a malformed URL."""
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StoreUnreachableError(f"store.url: cannot parse {mask_url(url)!r}") from e
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            parent = Path(database).parent
            if not parent.is_dir():
                raise StoreUnreachableError(f"store.url: directory does not exist: {parent}")
        kwargs["connect_args"] = {"timeout": connect_timeout_s, "check_same_thread": False}
    elif parsed.get_backend_name() == "postgresql":
        kwargs["pool_size"] = pool_size
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"connect_timeout": max(1, round(connect_timeout_s))}
    try:
        engine = create_engine(parsed, **kwargs)
    except (NoSuchModuleError, ImportError) as e:
        hint = " (install adaptd[postgres])" if parsed.get_backend_name() == "postgresql" else ""
        raise StoreUnreachableError(f"store.url: no driver for {parsed.drivername}{hint}") from e
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def check_reachable(engine: Engine) -> None:
    """Run ``SELECT 1`` or raise :class:`StoreUnreachableError` naming the URL (password hidden)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (OperationalError, SQLAlchemyError, OSError) as e:
        reason = mask_secrets(str(getattr(e, "orig", None) or e).strip().splitlines()[0])
        shown = mask_url(engine.url.render_as_string(hide_password=False))
        raise StoreUnreachableError(f"store.url: cannot reach {shown}: {reason}") from e


def open_store(settings: Settings, *, require_schema: bool = True) -> Engine:
    """The configured store, reached; with ``require_schema`` its schema must be current.

    Both the CLI and the daemon open the store through here, so they fail the same way.
    """
    from adaptd.config import ensure_state_dir
    from adaptd.storage.migrate import require_current

    if settings.store.url is None:
        ensure_state_dir(settings)
    engine = make_engine(
        settings.store_url,
        pool_size=settings.store.pool_size,
        connect_timeout_s=settings.store.connect_timeout_s,
    )
    check_reachable(engine)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database:
        # Created 0600 under the daemon's umask; a file from an older version is tightened too.
        for suffix in ("", "-wal", "-shm"):
            make_private_file(Path(engine.url.database + suffix))
    if require_schema:
        require_current(engine)
    return engine


#: SQLite's result code for a full disk (or a database at its max_page_count)
_SQLITE_FULL = 13
#: PostgreSQL's SQLSTATE class 53, insufficient resources: disk_full, out_of_memory, ...
_PG_DISK_FULL = "53100"


def store_full(error: BaseException) -> bool:
    """Whether a store call failed because the store's disk is full: SQLite's SQLITE_FULL
    ("database or disk is full"), an ENOSPC or EDQUOT on its files, PostgreSQL's disk_full.
    The rows are fine and the store answers, so unlike a refused row this is retried, and
    unlike an outage the operator must free space, not restart anything."""
    for cause in _causes(error):
        code = getattr(cause, "sqlite_errorcode", None)
        if code is not None and code & 0xFF == _SQLITE_FULL:
            return True
        if getattr(cause, "sqlstate", None) == _PG_DISK_FULL:
            return True
        if isinstance(cause, OSError) and cause.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
    return "database or disk is full" in str(error)


def describe_failure(error: BaseException) -> str:
    """One line saying why a store call failed, for HTTP answers, status and logs: ``store
    full: ...`` or ``store unreachable: ...`` (passwords masked)."""
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    reason = mask_secrets(lines[0] if lines else type(orig).__name__)
    if store_full(error):
        return f"store full: {reason} (free space on the store's disk)"
    return f"store unreachable: {reason}"


def store_outage(error: BaseException) -> bool:
    """Whether a store call failed because the store is down, unreachable or full (an outage,
    which status and metrics show and which ends by itself or by an operator), not because of
    what was asked (a bug, a refused row)."""
    for cause in _causes(error):
        if isinstance(cause, (OperationalError, InterfaceError, StoreUnreachableError)):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
    return store_full(error)


def log_store_failure(log: logging.Logger, what: str, error: BaseException) -> None:
    """Log that ``what`` failed: during a store outage one line that says why (the control loop
    fails the same way at every check until the store is back, and a traceback each time would
    bury the log); anything else with its traceback, as the bug it is."""
    if store_outage(error):
        log.error("%s: %s", what, describe_failure(error))
    else:
        log.error("%s", what, exc_info=error)


def _causes(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return seen
