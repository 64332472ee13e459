"""SIGTERM restarts of a real ``adaptd serve`` process under load: is everything that was
accepted (a prediction or a feedback answered 200) in the store afterwards? The peer is the
target, 0 lost; the stop time is shown against ``server.stop_timeout_s``."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from bench.faults.daemon import _register, start, write_config


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartsResult:
    restarts: int
    clients: int
    accepted_predictions: int
    lost_predictions: int
    accepted_feedback: int
    lost_feedback: int
    #: exit codes other than 0 (a stop that did not finish cleanly)
    bad_exits: int
    #: longest time from SIGTERM to exit
    max_stop_s: float


def _load(url: str, client_id: int, stop: threading.Event, out: dict[str, set[str]]) -> None:
    """Predict, then label the answer, until the daemon goes away; records what was accepted."""
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                answer = client.post("/v1/predict", json={"inputs": [f"c{client_id} text {i}"]})
                if answer.status_code != 200:
                    continue
                pid = answer.json()["predictions"][0]["id"]
                out["predictions"].add(pid)
                body = {"feedback": [{"id": pid, "label": "positive"}]}
                if client.post("/v1/feedback", json=body).status_code == 200:
                    out["feedback"].add(pid)
            except httpx.TransportError:  # the daemon stopped listening: this round is over
                return


def run(
    base: Path,
    adapter: Path,
    workdir: Path,
    *,
    restarts: int = 20,
    clients: int = 3,
    seconds: float = 1.0,
    flush_ms: float = 10_000.0,
) -> RestartsResult:
    """``restarts`` rounds of: start, ``clients`` clients for ``seconds``, SIGTERM under load.
    A long ``flush_ms`` leaves most rows to the stop path, which is what is measured."""
    workdir.mkdir(parents=True, exist_ok=True)
    state = workdir / "state"
    _register(state, base, adapter)
    config = write_config(
        workdir,
        base,
        state,
        model={"max_length": 16},
        serving={"registry_poll_s": 3600, "log_flush_ms": flush_ms},
    )
    accepted: dict[str, set[str]] = {"predictions": set(), "feedback": set()}
    bad_exits, max_stop = 0, 0.0
    for _ in range(restarts):
        with start(config, workdir, state) as daemon:
            stop = threading.Event()
            threads = [
                threading.Thread(target=_load, args=(daemon.url, n, stop, accepted))
                for n in range(clients)
            ]
            for t in threads:
                t.start()
            time.sleep(seconds)
            signalled = time.monotonic()
            daemon.proc.send_signal(signal.SIGTERM)
            code = daemon.proc.wait(timeout=120)
            max_stop = max(max_stop, time.monotonic() - signalled)
            bad_exits += code != 0
            stop.set()
            for t in threads:
                t.join(30)
    stored, labelled = _stored(state)
    return RestartsResult(
        restarts=restarts,
        clients=clients,
        accepted_predictions=len(accepted["predictions"]),
        lost_predictions=len(accepted["predictions"] - stored),
        accepted_feedback=len(accepted["feedback"]),
        lost_feedback=len(accepted["feedback"] - labelled),
        bad_exits=bad_exits,
        max_stop_s=max_stop,
    )


def _stored(state: Path) -> tuple[set[str], set[str]]:
    from adaptd.storage import tables
    from adaptd.storage.engine import make_engine

    engine = make_engine(f"sqlite:///{state / 'adaptd.db'}")
    try:
        with engine.connect() as conn:
            predictions = set(conn.execute(select(tables.predictions.c.id)).scalars())
            feedback = set(conn.execute(select(tables.feedback.c.prediction_id)).scalars())
    finally:
        engine.dispose()
    return predictions, feedback
