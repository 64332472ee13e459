"""The prediction log's insert, compiled once per store and fed DBAPI tuples (COPY on PostgreSQL).

``conn.execute(insert(predictions), rows)`` spends most of its time outside the database: it
compiles the statement for every batch, then builds a parameter dict per row and runs a bind
processor per value (two ``json.dumps`` through SQLAlchemy's JSON type, the timestamp through
:class:`~adaptd.storage.tables.UTCDateTime`). Profiled on SQLite, 20k MiniLM rows: 1.09 s in
the writer thread, of which ``sqlite3.executemany`` and the commit were 0.26 s. Here the
statement is compiled once, each row becomes one tuple in the statement's parameter order, and
the batch goes to the driver's ``executemany`` through :meth:`Connection.exec_driver_sql` (so
driver errors still arrive as SQLAlchemy's ``IntegrityError``/``DataError`` and engine events
still fire).

The values are SQLAlchemy's own bind processors' output, so a row stored here reads back exactly
as one stored through Core (``tests/unit/storage/test_log_insert.py`` compares them byte for
byte), with two exceptions chosen for speed, both producing the same stored text:

- JSON columns are encoded with a cached C encoder (``json.dumps`` builds a new one per call:
  about 4 us per call against 2 us), with ``json.dumps``'s defaults, ``NaN`` included so that
  PostgreSQL still refuses a NaN probability as it did.
- A timestamp object repeated from the previous row (every row of one request shares one) is
  converted once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Connection, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError

from adaptd.storage import tables as t

#: the columns the log writes, in parameter order (``seq`` is the store's)
COLUMNS = (
    "id",
    "ts",
    "adapter",
    "text",
    "text_hash",
    "label",
    "score",
    "probabilities",
    "embedding",
    "attributes",
    "truncated",
    "latency_ms",
    "text_features",
)

_TS = COLUMNS.index("ts")


def _json_encoder() -> Callable[[Any], str]:
    """``json.dumps`` with its default options, minus the per-call encoder construction."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has the C accelerator
        return json.dumps
    # The arguments json.JSONEncoder.iterencode passes for json.dumps's defaults, except the
    # circular-reference check (our values are flat dicts built per row).
    chunks = make(
        None,
        json.JSONEncoder().default,
        encoder.encode_basestring_ascii,
        None,
        ": ",
        ", ",
        False,
        False,
        True,
    )

    def encode(value: Any) -> str:
        # SQLAlchemy's JSON type stores None as the JSON text null, not as SQL NULL
        return "null" if value is None else "".join(chunks(value, 0))

    return encode


class PredictionInsert:
    """The insert of prediction rows for one dialect; :meth:`params` turns a row made by
    :func:`adaptd.storage.repository.prediction_row` into its DBAPI tuple."""

    def __init__(self, dialect: Dialect) -> None:
        # Positional parameters: tuples are cheaper to build than dicts, and every driver we
        # support takes them (qmark on SQLite, format on psycopg, whose default is pyformat).
        dialect_class: Any = type(dialect)
        positional = (
            dialect
            if dialect.paramstyle in ("qmark", "format", "numeric")
            else dialect_class(paramstyle="format")
        )
        compiled = insert(t.predictions).compile(
            dialect=positional, column_keys=list(COLUMNS), for_executemany=True
        )
        if tuple(compiled.positiontup or ()) != COLUMNS:  # pragma: no cover - a schema change
            raise RuntimeError(f"prediction insert parameters {compiled.positiontup} changed")
        self.sql = str(compiled)
        # On PostgreSQL, COPY: psycopg's executemany sends one INSERT per row (pipelined), and
        # measured 10.3k rows/s against COPY's 18.2k on the loaded 2-core box
        # (bench/serving/README.md). COPY's text format takes the same values, JSON as text.
        self._copy_sql: str | None = None
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            self._copy_sql = f"COPY {t.predictions.name} ({', '.join(COLUMNS)}) FROM STDIN"
        self._values = itemgetter(*COLUMNS)
        encode_json = _json_encoder()
        self._convert: list[tuple[int, Callable[[Any], Any]]] = []
        self._ts: Callable[[Any], Any] | None = None
        for i, name in enumerate(COLUMNS):
            column = t.predictions.c[name]
            processor = column.type.dialect_impl(dialect).bind_processor(dialect)
            if isinstance(column.type, JSON):
                self._convert.append((i, encode_json))
            elif i == _TS:
                self._ts = processor
            elif processor is not None:
                self._convert.append((i, processor))
        self._last_ts: tuple[datetime, Any] | None = None

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The row's parameters; raises ``ValueError``/``TypeError`` for a value no store could
        take (a naive timestamp, an attribute that is not JSON)."""
        values = list(self._values(row))
        for i, convert in self._convert:
            values[i] = convert(values[i])
        if self._ts is not None:
            ts = values[_TS]
            last = self._last_ts
            if last is not None and last[0] is ts:
                values[_TS] = last[1]
            else:
                values[_TS] = converted = self._ts(ts)
                self._last_ts = (ts, converted)
        return tuple(values)

    def execute(self, conn: Connection, params: Sequence[tuple[Any, ...]]) -> None:
        """Write ``params`` in the caller's transaction: one ``executemany``, or on PostgreSQL
        through psycopg one ``COPY``."""
        if not params:
            return
        if self._copy_sql is None:
            conn.exec_driver_sql(self.sql, list(params))
        else:
            self._copy(conn, params)

    def _copy(self, conn: Connection, params: Sequence[tuple[Any, ...]]) -> None:
        """``COPY ... FROM STDIN`` on the transaction's own psycopg connection; a driver error
        is raised as SQLAlchemy's class for it (``IntegrityError``, ``DataError``, ...), as
        ``executemany`` would have, so the writer tells refused rows from a store outage."""
        assert self._copy_sql is not None
        dbapi = conn.dialect.loaded_dbapi
        driver = conn.connection.driver_connection
        assert driver is not None
        try:
            with driver.cursor() as cursor, cursor.copy(self._copy_sql) as copy:
                for row in params:
                    copy.write_row(row)
        except dbapi.Error as e:
            raise DBAPIError.instance(
                self._copy_sql, None, e, dbapi.Error, dialect=conn.dialect
            ) from e
