"""Retention at a million rows, on SQLite and PostgreSQL, with the prediction log writing.

    PYTHONPATH=daemon:. python -m bench.retention [--quick] [--rows N] [--backend sqlite|postgresql]

A store is filled with ``--rows`` predictions (768-byte embeddings, as MiniLM's) spread over
450 days, half of them labelled, so 80 % are past the default 90-day age. While a writer thread
inserts 50 predictions every 20 ms (the log writer's pattern), two ways of deleting the expired
rows are timed on identical stores:

- adaptd: ``retention.prune``: batches of ``retention.batch_size`` by primary-key range;
- peer:   one ``DELETE ... WHERE ts < cutoff`` per table, the obvious statement.

Printed per backend and way: rows deleted, wall time, batches, time per batch (median, max:
the longest write lock held) and the writer's insert latency (p99, max), which is what a held
lock costs serving. The target: no lock held longer than 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import OperationalError

from adaptd.retention.prune import prune_table
from adaptd.retention.settings import RetentionSettings
from adaptd.storage import migrate
from adaptd.storage import tables as t
from adaptd.storage.engine import make_engine

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SPAN_DAYS = 450
EMBEDDING = bytes(range(256)) * 3  # 768 bytes


def fill(engine: Engine, rows: int, *, chunk: int = 20_000) -> float:
    started = time.perf_counter()
    step = timedelta(days=SPAN_DAYS) / rows
    for lo in range(0, rows, chunk):
        batch = [
            {
                "id": f"p{i}",
                "ts": NOW - timedelta(days=SPAN_DAYS) + i * step,
                "adapter": "a" * 64,
                "text": f"a logged text of about sixty characters, number {i:>10}",
                "text_hash": f"{i:064x}",
                "label": "positive",
                "score": 0.9,
                "probabilities": {"negative": 0.1, "positive": 0.9},
                "embedding": EMBEDDING,
                "attributes": {"group": "a"},
                "truncated": False,
                "latency_ms": 3.0,
            }
            for i in range(lo, min(rows, lo + chunk))
        ]
        with engine.begin() as conn:
            conn.execute(insert(t.predictions), batch)
            conn.execute(
                insert(t.feedback),
                [
                    {"prediction_id": r["id"], "label": "negative", "ts": r["ts"]}
                    for r in batch[::2]
                ],
            )
    return time.perf_counter() - started


class Writer(threading.Thread):
    """Inserts 50 fresh predictions every 20 ms and records each insert's latency."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.latencies: list[float] = []
        #: inserts that gave up (SQLite's busy timeout): predictions the log would have lost
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            rows = [
                {
                    "id": f"w{n + i}", "ts": NOW, "adapter": "a" * 64, "text": "new",
                    "text_hash": "0", "label": "positive", "score": 0.9,
                    "probabilities": {"positive": 0.9}, "embedding": EMBEDDING,
                    "truncated": False,
                }
                for i in range(50)
            ]  # fmt: skip
            n += 50
            started = time.perf_counter()
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(t.predictions), rows)
            except OperationalError:
                self.failed += 1
            self.latencies.append(time.perf_counter() - started)
            self.stop.wait(0.02)


@contextmanager
def writing(engine: Engine) -> Iterator[Writer]:
    writer = Writer(engine)
    writer.start()
    try:
        yield writer
    finally:
        writer.stop.set()
        writer.join()


def adaptd_way(engine: Engine, cutoff: datetime) -> tuple[int, list[float]]:
    held: list[float] = []
    retention = RetentionSettings()
    total = 0
    for table in ("predictions", "feedback"):
        deleted, _, _ = prune_table(
            engine, table, cutoff, retention, keep=[], on_batch=lambda n, s: held.append(s)
        )
        total += deleted
    return total, held


def peer_way(engine: Engine, cutoff: datetime) -> tuple[int, list[float]]:
    held: list[float] = []
    total = 0
    for table in (t.predictions, t.feedback):
        started = time.perf_counter()
        with engine.begin() as conn:
            total += conn.execute(delete(table).where(table.c.ts < cutoff)).rowcount
        held.append(time.perf_counter() - started)
    return total, held


def measure(
    name: str,
    make: Callable[[], Engine],
    way: Callable[[Engine, datetime], tuple[int, list[float]]],
    rows: int,
) -> None:
    engine = make()
    migrate.upgrade(engine)
    filled = fill(engine, rows)
    cutoff = NOW - timedelta(days=RetentionSettings().predictions or 90)
    with writing(engine) as writer:
        time.sleep(0.2)
        started = time.perf_counter()
        deleted, held = way(engine, cutoff)
        wall = time.perf_counter() - started
    engine.dispose()
    lat = sorted(writer.latencies)
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
    print(
        f"  {name:<8} {deleted:>9} {wall:>8.1f} {len(held):>7} "
        f"{statistics.median(held) * 1000:>10.1f} {max(held) * 1000:>10.1f} "
        f"{p99 * 1000:>9.1f} {max(lat, default=float('nan')) * 1000:>9.1f} {writer.failed:>7}"
        f"   (fill {filled:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="100,000 rows instead of 1,000,000")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], action="append")
    parser.add_argument(
        "--way", choices=["adaptd", "peer"], action="append", help="only this way (default: both)"
    )
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    backends = args.backend or ["sqlite", "postgresql"]
    print(
        f"retention of {rows:,} predictions over {SPAN_DAYS} days (half labelled), 90-day age, "
        f"batch {RetentionSettings().batch_size}, a writer inserting 50 rows / 20 ms"
    )
    print(f"load average at start: {Path('/proc/loadavg').read_text().split()[:3]}")
    header = (
        f"  {'way':<8} {'deleted':>9} {'wall s':>8} {'batches':>7} {'median ms':>10} "
        f"{'max ms':>10} {'ins p99':>9} {'ins max':>9} {'ins err':>7}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for backend in backends:
            print(f"{backend}: per batch = one delete transaction (the lock held); ins = writer")
            print(header)
            for name, way in (("adaptd", adaptd_way), ("peer", peer_way)):
                if args.way and name not in args.way:
                    continue
                if backend == "sqlite":
                    path = root / f"{name}.db"

                    def make(path: Path = path) -> Engine:
                        return make_engine(f"sqlite:///{path}")

                    measure(name, make, way, rows)
                    path.unlink(missing_ok=True)
                else:
                    with _postgres() as url:
                        measure(name, lambda url=url: make_engine(url), way, rows)  # type: ignore[misc]


@contextmanager
def _postgres() -> Iterator[str]:
    from tests.pg import postgres_server

    with postgres_server() as url:
        yield url


if __name__ == "__main__":
    main()
