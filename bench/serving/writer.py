"""(b) The prediction log writer alone, against the same rows written raw by the driver.

    PYTHONPATH=daemon:. python -m bench.serving.writer [--rows N] [--rounds R] [--postgres URL]

The writer's rate is rows/s from the first ``submit`` to the ``flush`` that sees them committed
(request-path size accounting, encoding, ``executemany``, commits). Its peers get the same rows
as prepared dicts and time building their tuples (``json.dumps`` of the two JSON columns, the
timestamp formatted), ``executemany`` in batches of 5,000 and a commit per batch:

- SQLite: ``sqlite3.executemany`` into the same migrated table (same indexes) in WAL mode,
  ``synchronous=NORMAL``; and into the index-less table earlier runs used (``raw-noindex``);
- PostgreSQL: ``psycopg`` ``executemany`` and ``COPY ... FROM STDIN`` into the same table, on a
  server given by ``--postgres`` or started privately by ``tests/pg.py`` (``fsync=off``: with
  5,000 rows a transaction, one fsync per batch would barely show).

Rounds alternate writer and peers on fresh stores, and each side keeps its best round, because
the machine is shared. The prepared rows are frozen out of the garbage collector's walk (see
:func:`measure`). A row carries a timestamp per request of 4 rows, as the HTTP handler
makes them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.serving.setup import LABELS

BATCH = 5000
PER_REQUEST = 4


def rows(n: int) -> list[dict[str, Any]]:
    """``n`` log rows as the HTTP handler makes them (MiniLM-sized embedding, full text)."""
    import numpy as np

    from adaptd.serving.batcher import Prediction
    from adaptd.serving.logwriter import make_row
    from bench.serving.throughput import GUARD

    p = Prediction(
        label="positive",
        score=0.9,
        probabilities=(0.1, 0.9),
        embedding=np.zeros(384, dtype=np.float32),
        adapter="v" * 64,
        truncated=False,
    )
    start = datetime.now(UTC)
    out = []
    for i in range(n):
        if i % PER_REQUEST == 0:
            ts = start + timedelta(milliseconds=i)
        out.append(
            make_row(
                prediction_id=f"r{i}",
                ts=ts,
                text=GUARD.for_log(f"a short review number {i}"),
                attributes={"group": "a"},
                prediction=p,
                labels=LABELS,
                latency_ms=1.0,
            )
        )
    return out


def _tuples(batch: list[dict[str, Any]], ts: Callable[[datetime], Any]) -> list[tuple[Any, ...]]:
    return [
        (
            r["id"],
            ts(r["ts"]),
            r["adapter"],
            r["text"],
            r["text_hash"],
            r["label"],
            r["score"],
            json.dumps(r["probabilities"]),
            r["embedding"],
            json.dumps(r["attributes"]),
            r["truncated"],
            r["latency_ms"],
        )
        for r in batch
    ]


_COLUMNS = (
    "id, ts, adapter, text, text_hash, label, score, probabilities, embedding, attributes, "
    "truncated, latency_ms"
)


def writer_seconds(url: str, items: list[dict[str, Any]]) -> float:
    """Submit ``items`` in requests of 4 rows and wait until every one is committed."""
    from adaptd.metrics import new_metrics
    from adaptd.serving.logwriter import PredictionLog
    from adaptd.storage.engine import make_engine

    engine = make_engine(url)
    log = PredictionLog(
        engine,
        new_metrics().log,
        buffer_rows=len(items) + 1,
        buffer_bytes=1 << 34,
        flush_ms=50.0,
        batch_rows=BATCH,
    )
    log.start()
    start = time.perf_counter()
    for i in range(0, len(items), PER_REQUEST):
        log.submit(items[i : i + PER_REQUEST])
    if not log.flush(timeout=600):
        raise RuntimeError("the writer did not finish")
    elapsed = time.perf_counter() - start
    state = log.state()
    log.stop()
    engine.dispose()
    if state.written != len(items):
        raise RuntimeError(f"wrote {state.written} of {len(items)} rows: {state.dropped}")
    return elapsed


def sqlite_raw_seconds(path: Path, items: list[dict[str, Any]], *, indexes: bool) -> float:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    if not indexes:  # the peer table of earlier runs: no index on ts or (adapter, seq)
        con.execute("DROP TABLE predictions")
        con.execute(
            "CREATE TABLE predictions (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, ts TEXT, "
            "adapter TEXT, text TEXT, text_hash TEXT, label TEXT, score REAL, probabilities "
            "TEXT, embedding BLOB, attributes TEXT, truncated INT, latency_ms REAL)"
        )
        con.commit()

    def ts(value: datetime) -> str:
        return value.isoformat(sep=" ")

    sql = f"INSERT INTO predictions ({_COLUMNS}) VALUES ({', '.join('?' * 12)})"
    start = time.perf_counter()
    for i in range(0, len(items), BATCH):
        con.executemany(sql, _tuples(items[i : i + BATCH], ts))
        con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


def _psycopg_connect(url: str) -> Any:
    import psycopg
    from sqlalchemy import make_url

    u = make_url(url)
    return psycopg.connect(
        dbname=u.database,
        user=u.username,
        password=u.password,
        host=u.query.get("host") or u.host,
        port=u.query.get("port") or u.port,
    )


def postgres_raw_seconds(url: str, items: list[dict[str, Any]], *, copy: bool) -> float:
    con = _psycopg_connect(url)

    def ts(value: datetime) -> datetime:
        return value

    start = time.perf_counter()
    with con.cursor() as cur:
        for i in range(0, len(items), BATCH):
            values = _tuples(items[i : i + BATCH], ts)
            if copy:
                with cur.copy(f"COPY predictions ({_COLUMNS}) FROM STDIN") as c:
                    for v in values:
                        c.write_row(v)
            else:
                cur.executemany(
                    f"INSERT INTO predictions ({_COLUMNS}) VALUES ({', '.join(['%s'] * 12)})",
                    values,
                )
            con.commit()
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed


@contextmanager
def _postgres(url: str | None) -> Iterator[str | None]:
    if url:
        yield url
        return
    try:
        from tests.pg import postgres_server

        with postgres_server() as started:
            yield started
    except (ImportError, RuntimeError) as e:
        print(f"    PostgreSQL: not measured ({e})")
        yield None


@contextmanager
def _fresh_pg(url: str) -> Iterator[str]:
    """A migrated database of its own on the server at ``url``, dropped afterwards."""
    import uuid

    from sqlalchemy import make_url, text

    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = make_url(url).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(db)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield db
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def _fresh_sqlite() -> Iterator[Path]:
    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.db"
        engine = make_engine(f"sqlite:///{path}")
        migrate.upgrade(engine)
        engine.dispose()
        yield path


def measure(n: int, rounds: int, postgres: str | None, *, sqlite: bool = True) -> dict[str, float]:
    """Best rows/s per side over ``rounds`` alternating rounds."""
    import gc

    items = rows(n)
    # The prepared rows are the input, alive for the whole run: in a daemon a row exists from its
    # request until it is written. Left in the collector's walk, every collection the writer's own
    # allocations set off scans all of them (100k rows: 117-186 us of CPU a row instead of 37-41,
    # measured), a cost of this benchmark's setup that the raw peers, allocating little, escape.
    gc.collect()
    gc.freeze()
    best: dict[str, float] = {}

    def keep(name: str, seconds: float) -> None:
        best[name] = max(best.get(name, 0.0), n / seconds)

    for _ in range(rounds if sqlite else 0):
        with _fresh_sqlite() as path:
            keep("sqlite writer", writer_seconds(f"sqlite:///{path}", items))
        with _fresh_sqlite() as path:
            keep("sqlite raw", sqlite_raw_seconds(path, items, indexes=True))
        with _fresh_sqlite() as path:
            keep("sqlite raw-noindex", sqlite_raw_seconds(path, items, indexes=False))
    if postgres is not False:
        with _postgres(postgres) as server:
            if server is not None:
                for _ in range(rounds):
                    with _fresh_pg(server) as db:
                        keep("postgres writer", writer_seconds(db, items))
                    with _fresh_pg(server) as db:
                        keep(
                            "postgres raw executemany", postgres_raw_seconds(db, items, copy=False)
                        )
                    with _fresh_pg(server) as db:
                        keep("postgres raw COPY", postgres_raw_seconds(db, items, copy=True))
    gc.unfreeze()
    return best


def report(best: dict[str, float]) -> None:
    for store, peers in (
        ("sqlite", ("raw", "raw-noindex")),
        ("postgres", ("raw executemany", "raw COPY")),
    ):
        ours = best.get(f"{store} writer")
        if ours is None:
            continue
        print(f"    log writer alone, {store}: {ours:10,.0f} rows/s")
        for peer in peers:
            raw = best[f"{store} {peer}"]
            print(f"      {peer:<22} {raw:10,.0f} rows/s  writer/peer {ours / raw:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="SQLAlchemy URL of a server to create databases on")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args()
    pg: Any = False if args.no_postgres else args.postgres
    report(measure(args.rows, args.rounds, pg, sqlite=not args.no_sqlite))


if __name__ == "__main__":
    main()
