"""systemd's watchdog against a real daemon: pings on a real AF_UNIX datagram socket while every
part makes progress, none once a part is stuck (within one WatchdogSec), and /healthz naming it."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from adaptd.role import Role
from adaptd.service import RunState, Service
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for

WATCHDOG_S = 2.0


class Listener:
    """What systemd would receive on NOTIFY_SOCKET, each datagram with its arrival time."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.received: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            self.received.append((time.monotonic(), data.decode()))

    def pings(self, since: float = 0.0) -> list[float]:
        return [t for t, m in list(self.received) if m == "WATCHDOG=1" and t >= since]

    def messages(self) -> list[str]:
        return [m for _, m in list(self.received)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    return build_base(tmp_path_factory.mktemp("watchdog-base") / "bert")


@pytest.fixture
def daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_base: Path
) -> Iterator[tuple[Service, Listener]]:
    base = tiny_base
    listener = Listener(tmp_path / "notify.sock")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", str(int(WATCHDOG_S * 1_000_000)))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    settings = settings_for(tmp_path / "state", base)
    engine = store_for(settings)
    register(engine, settings, build_adapter(base, tmp_path / "adapter", seed=1))
    engine.dispose()
    service = Service(settings=settings, role=Role.ALL)
    service.startup()
    yield service, listener
    if service.state not in (RunState.STOPPED, RunState.CREATED):
        service.handle_term()
        service.shutdown()
    listener.close()


def test_a_stuck_batcher_stops_the_pings_within_one_interval_and_healthz_names_it(
    daemon: tuple[Service, Listener],
) -> None:
    service, listener = daemon
    assert service.batcher is not None
    url = f"http://127.0.0.1:{service.http_port}"
    wait_for(lambda: len(listener.pings()) >= 3)
    assert any(m.startswith("READY=1") for m in listener.messages())
    assert httpx.get(f"{url}/healthz", timeout=10).json() == {"status": "ok"}

    # A forward pass that never returns, as a deadlocked kernel or a hung device would.
    release, entered = threading.Event(), threading.Event()
    forward = service.batcher._forward

    def hang(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait()
        return forward(*args, **kwargs)

    service.batcher._forward = hang  # type: ignore[method-assign]
    pending = service.batcher.submit(["a text that will wait"])
    assert entered.wait(10)
    stuck_at = time.monotonic()

    time.sleep(WATCHDOG_S * 1.5)
    last_ping = max(listener.pings())
    assert last_ping - stuck_at < WATCHDOG_S, "pings went on past one WatchdogSec"
    assert not listener.pings(since=stuck_at + WATCHDOG_S)
    assert any(m.startswith("STATUS=stuck: batcher:") for m in listener.messages())
    health = httpx.get(f"{url}/healthz", timeout=10)
    assert health.status_code == 503
    assert health.json()["detail"].startswith("stuck: batcher: one unit of work has run for")

    release.set()
    assert pending.result(timeout=10)[0].label in {"negative", "positive"}
    resumed = time.monotonic()
    wait_for(lambda: len(listener.pings(since=resumed)) >= 1, timeout=WATCHDOG_S * 2)
    assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200


def test_a_stuck_log_writer_and_a_dead_scheduler_are_named(
    daemon: tuple[Service, Listener],
) -> None:
    service, listener = daemon
    assert service.log is not None and service.control is not None
    url = f"http://127.0.0.1:{service.http_port}"
    release, entered = threading.Event(), threading.Event()
    store = service.log._store

    def hang(entries: Any) -> None:
        entered.set()
        release.wait()
        store(entries)

    service.log._store = hang  # type: ignore[method-assign]
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/v1/predict", json={"inputs": ["good"]}).status_code == 200
        assert entered.wait(10)
        wait_for(lambda: client.get("/healthz").status_code == 503, timeout=WATCHDOG_S * 2)
        assert client.get("/healthz").json()["detail"].startswith("stuck: log writer:")
        release.set()
        wait_for(lambda: client.get("/healthz").status_code == 200)

        # The scheduler's thread gone behind the loop's back (as if it had crashed).
        scheduler = service.control.loop._scheduler
        assert scheduler is not None
        scheduler.shutdown(wait=False)
        detail = client.get("/healthz").json()["detail"]
        assert detail == "stuck: scheduler: its thread is not running"
    gone = time.monotonic()
    time.sleep(WATCHDOG_S)
    assert not listener.pings(since=gone + WATCHDOG_S / 4 + 0.2)
