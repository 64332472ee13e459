"""A full disk under the store: a real ``adaptd serve`` whose ``state_dir`` (the SQLite store and
the adapters) is on a small tmpfs of its own, filled up under load, then freed.

What is measured against what must hold (issue 10):

- predictions answered 200 throughout (serving needs no disk);
- the prediction log keeps what it can within its bounds and counts the rest with reason
  ``store_full``; it does not crash or spin (write errors per second while full);
- ``/v1/status`` and the daemon's log say the store is full; feedback is a 503 naming it;
- ``adaptd adapters import`` on the full disk fails with a one-line error and leaves nothing
  registered, installed half-way or served; after space is freed it succeeds;
- once space is freed, writing resumes: every prediction answered 200 is stored or counted
  dropped, and the refused feedback is stored when sent again.

The filesystem is a tmpfs mounted for the run (``mount -t tmpfs -o size=...``, as root); where
mounting is not permitted :func:`run` raises :class:`RuntimeError` saying so.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.faults.daemon import _register, start, stored_ids, write_config
from bench.faults.pgrestart import _client, _retry, _Tally


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskFullResult:
    size_mb: int
    full_s: float
    predictions_ok: int
    predictions_failed: dict[str, int]
    #: predictions answered 200 not in the store at the end, and how many drops were counted
    lost: int
    dropped: dict[str, int]
    buffer_rows: int
    max_queued_rows: int
    #: failed batch inserts per second while the disk was full (a spinning writer: hundreds)
    write_errors_per_s: float
    #: what /v1/status's log section said while full, and whether the daemon's log said it
    status_error: str | None
    log_line: str | None
    feedback_ok: int
    feedback_503: int
    feedback_503_naming_full: int
    feedback_other: dict[str, int]
    detail_503: str
    retried_ok: int
    retried_failed: int
    #: refused again because its prediction was dropped (unknown to the store, a 404 now)
    retried_dropped: int
    feedback_lost: int
    #: ``adaptd adapters import`` on the full disk: exit code, its message, versions
    #: registered and temporary directories left (targets 1, -, 0, 0); then after freeing
    import_full_rc: int
    import_full_message: str
    import_full_registered: int
    import_full_leftovers: int
    import_freed_rc: int
    #: seconds from freeing space until the buffered rows were written, or None
    resumed_s: float | None
    serving_unchanged: bool
    unclean_exit: bool


@contextmanager
def tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    """A private tmpfs of ``size_mb`` at ``path`` for the block; RuntimeError if not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise RuntimeError(f"cannot mount a tmpfs at {path}: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        # Lazy: a daemon killed a moment ago may still hold a file open there.
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the filesystem refuses another byte; returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    written += f.write(block) or 0
                except OSError:
                    break
    return written


def run(
    base: Path,
    adapter: Path,
    other_adapter: Path,
    workdir: Path,
    *,
    clients: int = 2,
    size_mb: int = 16,
    before_s: float = 4.0,
    full_s: float = 12.0,
    after_s: float = 6.0,
    buffer_rows: int = 25,
) -> DiskFullResult:
    """One run; ``other_adapter`` is imported with the CLI while the disk is full."""
    workdir.mkdir(parents=True, exist_ok=True)
    with tmpfs(workdir / "fs", size_mb) as fs:
        state = fs / "state"
        _register(state, base, adapter)
        config = write_config(
            workdir,
            base,
            state,
            model={"max_length": 16},
            serving={"registry_poll_s": 2, "log_buffer_rows": buffer_rows},
        )
        tally = _Tally(needle="full")
        with (
            start(config, workdir, state, role="serve") as daemon,
            httpx.Client(base_url=daemon.url, timeout=30) as probe,
        ):
            serving = _serving(probe)
            stop = threading.Event()
            threads = [
                threading.Thread(target=_client, args=(daemon.url, n, stop, tally))
                for n in range(clients)
            ]
            for t in threads:
                t.start()
            time.sleep(before_s)
            registered = _versions(probe)
            fill(fs / "filler")
            full_at = time.monotonic()
            errors_before = _metric(probe, "adaptd_prediction_log_write_errors_total")
            # The CLI takes seconds to start (torch): it runs while the full disk is watched.
            imported: list[tuple[int, str]] = []
            importer = threading.Thread(
                target=lambda: imported.append(_import(config, other_adapter))
            )
            importer.start()
            status_error, max_queued = None, 0
            while time.monotonic() - full_at < full_s:
                log = probe.get("/v1/status").json()["log"]
                max_queued = max(max_queued, int(log["queued_rows"]))
                if log["last_error"] and status_error is None:
                    status_error = str(log["last_error"])
                time.sleep(0.5)
            errors = _metric(probe, "adaptd_prediction_log_write_errors_total") - errors_before
            write_errors_per_s = errors / (time.monotonic() - full_at)
            importer.join(600)
            leftovers = len(list((state / "adapters").glob(".tmp-*")))
            registered_full = len(_versions(probe) - registered)
            (fs / "filler").unlink()
            freed_at = time.monotonic()
            resumed_s = None
            # Traffic goes on; resumed = the writer's error cleared and no backlog left.
            while (since := time.monotonic() - freed_at) < after_s or (
                resumed_s is None and since < 60
            ):
                log = probe.get("/v1/status").json()["log"]
                if resumed_s is None and log["last_error"] is None:
                    if int(log["queued_rows"]) <= clients:
                        resumed_s = since
                time.sleep(0.25)
            stop.set()
            for t in threads:
                t.join(60)
            retried = _retry(daemon.url, tally.refused)
            imported_after = _import(config, other_adapter)
            final = probe.get("/v1/status").json()
            serving_unchanged = _serving(probe) == serving
            daemon.proc.send_signal(signal.SIGTERM)
            unclean = daemon.proc.wait(timeout=120) != 0
        stored = stored_ids(state)
        labelled = _labelled(state)
    log_line = _log_line(workdir / "daemon.log")
    return DiskFullResult(
        size_mb=size_mb,
        full_s=full_s,
        predictions_ok=len(tally.predicted),
        predictions_failed=dict(tally.predict_failed),
        lost=len(tally.predicted - stored),
        dropped={k: v for k, v in final["log"]["dropped_by_reason"].items() if v},
        buffer_rows=buffer_rows,
        max_queued_rows=max_queued,
        write_errors_per_s=write_errors_per_s,
        status_error=status_error,
        log_line=log_line,
        feedback_ok=len(tally.labelled),
        feedback_503=len(tally.refused),
        feedback_503_naming_full=tally.refused_naming_store,
        feedback_other=tally.other_codes(stored),
        detail_503=tally.detail_503,
        retried_ok=len(retried),
        # refused again although its prediction is stored (a dropped one is unknown indeed)
        retried_failed=sum(1 for pid in tally.refused if pid not in retried and pid in stored),
        retried_dropped=sum(1 for pid in tally.refused if pid not in retried and pid not in stored),
        feedback_lost=len((tally.labelled | retried) - labelled),
        import_full_rc=imported[0][0] if imported else -1,
        import_full_message=imported[0][1] if imported else "",
        import_full_registered=registered_full,
        import_full_leftovers=leftovers,
        import_freed_rc=imported_after[0],
        resumed_s=resumed_s,
        serving_unchanged=serving_unchanged,
        unclean_exit=unclean,
    )


def _serving(probe: httpx.Client) -> Any:
    return probe.get("/v1/status").json()["adapter"]["serving"]


def _versions(probe: httpx.Client) -> set[str]:
    return {a["version"] for a in probe.get("/v1/adapters").json()["adapters"]}


def _metric(probe: httpx.Client, name: str) -> float:
    text = probe.get("/metrics").text
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _import(config: Path, directory: Path) -> tuple[int, str]:
    """``adaptd adapters import`` as an operator runs it: exit code and last line of stderr."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("ADAPTD_CONFIG", None)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "adaptd",
            "adapters",
            "import",
            str(directory),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    return done.returncode, lines[-1] if lines else ""


def _labelled(state: Path) -> set[str]:
    from sqlalchemy import select

    from adaptd.storage import tables
    from adaptd.storage.engine import make_engine

    engine = make_engine(f"sqlite:///{state / 'adaptd.db'}")
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(tables.feedback.c.prediction_id)).scalars())
    finally:
        engine.dispose()


def _log_line(path: Path) -> str | None:
    """The daemon's first log line saying the store is full."""
    for line in path.read_text(errors="replace").splitlines():
        if "store full" in line:
            return line
    return None
