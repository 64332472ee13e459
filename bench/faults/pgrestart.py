"""A PostgreSQL restart under load: a real ``adaptd serve`` (role ``all``) on a real PostgreSQL,
clients predicting and labelling every answer, the server stopped (``fast``: every session is
ended, as a service restart does) for ``outage_s``, then started again.

What is measured against what must hold (issue 10):

- predictions answered 200 throughout, and ``/readyz`` 200 (serving needs no store);
- the prediction log buffers within its bounds and writes everything once the server is back:
  answered 200 == rows in the store, or drops counted with a reason;
- feedback during the outage is a 503 that names the store (never a 500), and the same feedback
  sent again after the restart is stored;
- the control loop survives: a check completes after the restart;
- one leader at most at any sample, with a second daemon (role ``control``) standing by, and
  the leader lock is taken again after the restart.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import select

from bench.faults.daemon import Daemon, _register, start, write_config


class Server(Protocol):
    """What the scenario needs of the PostgreSQL server (tests/pg.py's PostgresServer)."""

    @property
    def url(self) -> str: ...

    def stop(self, mode: str = "fast") -> None: ...

    def start(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PgRestartResult:
    clients: int
    outage_s: float
    predictions_ok: int
    #: predict calls not answered 200 (any code, or no answer), by code
    predictions_failed: dict[str, int]
    readyz_probes: int
    readyz_failed: int
    #: predictions answered 200 whose row is not in the store at the end
    lost: int
    #: the writer's drops by reason (counted, not silent)
    dropped: dict[str, int]
    max_queued_rows: int
    buffer_rows: int
    #: seconds from the server's start until the backlog was written (queue back to its
    #: steady state), or None if it never was
    backlog_written_s: float | None
    feedback_ok: int
    #: feedback answered 503 while the store was away, and how many named the store
    feedback_503: int
    feedback_503_naming_store: int
    #: feedback answered anything but 200/503 (a 500 here is a bug), by code; a 404 counts
    #: here unless its prediction was dropped
    feedback_other: dict[str, int]
    #: the 503'd feedback sent again after the restart: stored / still refused
    retried_ok: int
    retried_failed: int
    #: feedback answered 200 (first time or retried) not in the store at the end
    feedback_lost: int
    #: seconds from the server's start until a check completed without error, or None
    check_after_s: float | None
    #: seconds from the server's start until a daemon led again, or None
    leader_after_s: float | None
    #: most daemons that said they were the leader in one status sample (must be <= 1)
    max_leaders: int
    #: leader terms started over the run, by daemon (a term ends when the lock is lost)
    terms: dict[str, int]
    unclean_exits: int
    #: tracebacks in the daemons' logs: an outage is logged in one line per failed step, a
    #: traceback is a bug (the first one is kept in ``first_traceback``)
    tracebacks: int = 0
    first_traceback: str = ""
    detail_503: str = ""
    samples: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class _Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    predicted: set[str] = field(default_factory=set)
    predict_failed: Counter[str] = field(default_factory=Counter)
    labelled: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    refused_naming_store: int = 0
    detail_503: str = ""
    feedback_other: Counter[str] = field(default_factory=Counter)
    #: feedback answered 404 (unknown id): a bug unless its prediction was dropped, counted
    not_found: list[str] = field(default_factory=list)
    #: a 503's detail must contain this to count as naming the cause
    needle: str = "store"

    def other_codes(self, stored: set[str]) -> dict[str, int]:
        """The unexpected feedback answers: any but 200 and 503, and a 404 for a prediction
        that is in the store (one not stored was dropped, counted, and is unknown indeed)."""
        codes = Counter(self.feedback_other)
        wrong = sum(1 for pid in self.not_found if pid in stored)
        if wrong:
            codes["404"] += wrong
        return dict(codes)


def _client(url: str, n: int, stop: threading.Event, tally: _Tally) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                answer = client.post("/v1/predict", json={"inputs": [f"client {n} text {i}"]})
            except httpx.TransportError as e:
                with tally.lock:
                    tally.predict_failed[type(e).__name__] += 1
                continue
            if answer.status_code != 200:
                with tally.lock:
                    tally.predict_failed[str(answer.status_code)] += 1
                continue
            pid = answer.json()["predictions"][0]["id"]
            with tally.lock:
                tally.predicted.add(pid)
            body = {"feedback": [{"id": pid, "label": "positive"}]}
            try:
                fb = client.post("/v1/feedback", json=body)
            except httpx.TransportError as e:
                with tally.lock:
                    tally.feedback_other[type(e).__name__] += 1
                continue
            with tally.lock:
                if fb.status_code == 200:
                    tally.labelled.add(pid)
                elif fb.status_code == 503:
                    tally.refused.append(pid)
                    detail = str(fb.json().get("detail", ""))
                    tally.refused_naming_store += tally.needle in detail
                    tally.detail_503 = tally.detail_503 or detail
                elif fb.status_code == 404:
                    tally.not_found.append(pid)
                else:
                    tally.feedback_other[str(fb.status_code)] += 1


@dataclass
class _Watch:
    """What the status and readiness probes saw, sampled every ``every_s``."""

    readyz: int = 0
    readyz_failed: int = 0
    samples: int = 0
    max_queued: int = 0
    max_leaders: int = 0
    #: monotonic times: last sample with a backlog, first completed check and leader after up
    backlog_until: float | None = None
    check_at: float | None = None
    leader_at: float | None = None
    up_wall: datetime | None = None
    up_at: float | None = None
    status: dict[str, dict[str, Any]] = field(default_factory=dict)


def _watch(
    serving: Daemon, daemons: dict[str, Daemon], stop: threading.Event, w: _Watch, clients: int
) -> None:
    with httpx.Client(timeout=10) as client:
        while not stop.wait(0.25):
            try:
                ready = client.get(f"{serving.url}/readyz")
                w.readyz += 1
                w.readyz_failed += ready.status_code != 200
            except httpx.TransportError:
                w.readyz += 1
                w.readyz_failed += 1
            leaders = 0
            for name, daemon in daemons.items():
                try:
                    doc = client.get(f"{daemon.url}/v1/status").json()
                except (httpx.TransportError, ValueError):
                    continue
                w.status[name] = doc
                leading = bool(doc.get("leader", {}).get("leader"))
                leaders += leading
                now = time.monotonic()
                if w.up_at is not None and leading and w.leader_at is None:
                    w.leader_at = now
                last = (doc.get("control") or {}).get("last_check") or {}
                if (
                    w.up_wall is not None
                    and w.check_at is None
                    and last.get("ts")
                    and datetime.fromisoformat(last["ts"]) > w.up_wall
                    and not last.get("error")
                ):
                    w.check_at = now
                if "log" in doc:
                    queued = int(doc["log"]["queued_rows"])
                    w.max_queued = max(w.max_queued, queued)
                    if queued > clients:  # more than the rows in flight: a backlog
                        w.backlog_until = now
            w.samples += 1
            w.max_leaders = max(w.max_leaders, leaders)


def run(
    base: Path,
    adapter: Path,
    workdir: Path,
    server: Server,
    *,
    clients: int = 3,
    warmup_s: float = 5.0,
    outage_s: float = 10.0,
    after_s: float = 10.0,
    standby: bool = True,
) -> PgRestartResult:
    """One run; ``server`` is stopped for ``outage_s`` after ``warmup_s`` of traffic, which
    goes on for ``after_s`` after it is back."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "state"
    _register(state, base, adapter, url=server.url)
    buffer_rows = 20_000
    sections: dict[str, Any] = {
        "store": {"url": server.url, "connect_timeout_s": 2},
        "serving": {"registry_poll_s": 2, "log_buffer_rows": buffer_rows},
        "scheduler": {"check_interval_s": 2, "check_on_start": True},
        "model": {"max_length": 16},
    }
    config = write_config(workdir, base, state, **sections)
    tally, watch = _Tally(), _Watch()
    notes: list[str] = []
    with ExitStack() as stack:
        main = stack.enter_context(start(config, workdir, state, role="all"))
        daemons = {"all": main}
        if standby:
            # A second candidate for the leader lock: the control role loads no model.
            other = workdir / "standby"
            other.mkdir(exist_ok=True)
            other_config = write_config(other, base, other / "state", **sections)
            daemons["control"] = stack.enter_context(
                start(other_config, other, other / "state", role="control")
            )
        stop_clients, stop_watch = threading.Event(), threading.Event()
        threads = [
            threading.Thread(target=_client, args=(main.url, n, stop_clients, tally))
            for n in range(clients)
        ]
        watcher = threading.Thread(target=_watch, args=(main, daemons, stop_watch, watch, clients))
        for t in [*threads, watcher]:
            t.start()
        time.sleep(warmup_s)
        server.stop()
        time.sleep(outage_s)
        server.start()
        watch.up_wall, watch.up_at = datetime.now(UTC), time.monotonic()
        time.sleep(after_s)
        stop_clients.set()
        for t in threads:
            t.join(60)
        retried = _retry(main.url, tally.refused)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (
            watch.check_at is None or watch.leader_at is None or not _drained(watch)
        ):
            time.sleep(0.5)
        stop_watch.set()
        watcher.join(30)
        final = dict(watch.status)
        unclean = 0
        for daemon in daemons.values():
            daemon.proc.send_signal(signal.SIGTERM)
        for daemon in daemons.values():
            unclean += daemon.proc.wait(timeout=120) != 0
    stored, labelled = _stored(server.url)
    logs = "".join(
        path.read_text(errors="replace")
        for path in (workdir / "daemon.log", workdir / "standby" / "daemon.log")
        if path.is_file()
    )
    log = final.get("all", {}).get("log", {})
    up = watch.up_at or 0.0
    return PgRestartResult(
        clients=clients,
        outage_s=outage_s,
        predictions_ok=len(tally.predicted),
        predictions_failed=dict(tally.predict_failed),
        readyz_probes=watch.readyz,
        readyz_failed=watch.readyz_failed,
        lost=len(tally.predicted - stored),
        dropped={k: v for k, v in log.get("dropped_by_reason", {}).items() if v},
        max_queued_rows=watch.max_queued,
        buffer_rows=buffer_rows,
        backlog_written_s=(watch.backlog_until - up) if watch.backlog_until else None,
        feedback_ok=len(tally.labelled),
        feedback_503=len(tally.refused),
        feedback_503_naming_store=tally.refused_naming_store,
        feedback_other=tally.other_codes(stored),
        retried_ok=len(retried),
        # refused again although its prediction is stored (a dropped one is unknown indeed)
        retried_failed=sum(1 for pid in tally.refused if pid not in retried and pid in stored),
        feedback_lost=len((tally.labelled | retried) - labelled),
        check_after_s=(watch.check_at - up) if watch.check_at else None,
        leader_after_s=(watch.leader_at - up) if watch.leader_at else None,
        max_leaders=watch.max_leaders,
        terms={n: int(d.get("leader", {}).get("terms", 0)) for n, d in final.items()},
        unclean_exits=unclean,
        tracebacks=logs.count(_TRACEBACK),
        first_traceback=_first_traceback(logs),
        detail_503=tally.detail_503,
        samples=watch.samples,
        notes=notes,
    )


_TRACEBACK = "Traceback (most recent call last)"


def _first_traceback(logs: str) -> str:
    at = logs.find(_TRACEBACK)
    return "" if at < 0 else logs[max(0, logs.rfind("\n", 0, at - 1)) : at + 3000]


def _drained(w: _Watch) -> bool:
    log = w.status.get("all", {}).get("log", {})
    return int(log.get("queued_rows", 1)) == 0


def _retry(url: str, ids: list[str]) -> set[str]:
    """Send the refused feedback again (as a client honouring Retry-After would), a 503 for up
    to 30 s; returns the ids stored."""
    ok: set[str] = set()
    with httpx.Client(base_url=url, timeout=30) as client:
        for pid in ids:
            deadline = time.monotonic() + 30
            while True:
                code = client.post(
                    "/v1/feedback", json={"feedback": [{"id": pid, "label": "positive"}]}
                ).status_code
                if code == 200:
                    ok.add(pid)
                    break
                if code != 503 or time.monotonic() > deadline:
                    break
                time.sleep(1)
    return ok


def _stored(url: str) -> tuple[set[str], set[str]]:
    from adaptd.storage import tables
    from adaptd.storage.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            predictions = set(conn.execute(select(tables.predictions.c.id)).scalars())
            feedback = set(conn.execute(select(tables.feedback.c.prediction_id)).scalars())
    finally:
        engine.dispose()
    return predictions, feedback
