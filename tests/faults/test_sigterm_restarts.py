"""20 SIGTERM restarts of a real ``adaptd serve`` process under load: every prediction answered
200 and every feedback answered 200 is in the store afterwards (nothing accepted is lost)."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx
import pytest
from bench.faults.daemon import start, write_config
from sqlalchemy import select

from adaptd.storage import tables
from adaptd.storage.engine import make_engine
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for

pytestmark = pytest.mark.slow
RESTARTS = 20
CLIENTS = 3


def load(url: str, client_id: int, stop: threading.Event, out: dict[str, set[str]]) -> None:
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


def test_twenty_sigterm_restarts_under_load_lose_nothing_accepted(tmp_path: Path) -> None:
    base = build_base(tmp_path / "base")
    adapter = build_adapter(base, tmp_path / "adapter")
    state = tmp_path / "state"
    settings = settings_for(state, base)
    engine = store_for(settings)
    register(engine, settings, adapter)
    engine.dispose()
    # A long flush interval: only the stop path can write most rows, which is what is tested.
    config = write_config(
        tmp_path,
        base,
        state,
        model={"max_length": 16},
        serving={"registry_poll_s": 3600, "log_flush_ms": 10_000},
    )
    accepted: dict[str, set[str]] = {"predictions": set(), "feedback": set()}
    for _ in range(RESTARTS):
        with start(config, tmp_path, state) as daemon:
            stop = threading.Event()
            clients = [
                threading.Thread(target=load, args=(daemon.url, n, stop, accepted))
                for n in range(CLIENTS)
            ]
            for c in clients:
                c.start()
            time.sleep(1.0)
            daemon.proc.send_signal(signal.SIGTERM)
            assert daemon.proc.wait(timeout=60) == 0
            stop.set()
            for c in clients:
                c.join(30)
    assert len(accepted["predictions"]) > RESTARTS * CLIENTS, "there was load"
    engine = make_engine(f"sqlite:///{state / 'adaptd.db'}")
    try:
        with engine.connect() as conn:
            stored = set(conn.execute(select(tables.predictions.c.id)).scalars())
            labelled = set(conn.execute(select(tables.feedback.c.prediction_id)).scalars())
    finally:
        engine.dispose()
    assert accepted["predictions"] - stored == set()
    assert accepted["feedback"] - labelled == set()
