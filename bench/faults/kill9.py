"""``kill -9`` under steady traffic: how many predictions answered 200 never reach the store.

A real ``adaptd serve`` process (its own interpreter, real HTTP, real SQLite) is sent predictions
at a fixed rate; right after an answer it is killed with SIGKILL, and the store is compared with
the ids that were answered. The prediction log writes a row at the latest ``log_flush_ms`` after
it was answered, so only the traffic of about one flush interval before the kill can be lost:
the peer number printed next to the measurement is that bound, ``rate x flush interval``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

import adaptd

LABELS = ("negative", "positive")


@dataclass(frozen=True, slots=True, kw_only=True)
class Kill9Result:
    flush_ms: float
    #: requests per second actually reached
    rate_per_s: float
    answered: int
    stored: int
    #: answered 200, not in the store after the kill
    lost: int
    #: the bound: predictions answered within one flush interval before the kill
    answered_in_last_flush: int
    #: how long before the kill the oldest lost prediction was answered (None: none lost)
    oldest_lost_age_s: float | None


def _register(state_dir: Path, base: Path, adapter: Path) -> None:
    from datetime import UTC, datetime

    from adaptd.adapters import registry
    from adaptd.modeling.base import inspect_base
    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(f"sqlite:///{state_dir / 'adaptd.db'}")
    try:
        migrate.upgrade(engine)
        now = datetime.now(UTC)
        record = registry.import_adapter(
            engine,
            state_dir / "adapters",
            adapter,
            base=inspect_base(str(base), LABELS),
            labels=LABELS,
            now=now,
        )
        registry.promote(engine, record.version, now, reason="kill -9 benchmark")
    finally:
        engine.dispose()


def _stored_ids(state_dir: Path) -> set[str]:
    from sqlalchemy import select

    from adaptd.storage import tables
    from adaptd.storage.engine import make_engine

    engine = make_engine(f"sqlite:///{state_dir / 'adaptd.db'}")
    try:
        with engine.connect() as conn:
            return {row.id for row in conn.execute(select(tables.predictions.c.id))}
    finally:
        engine.dispose()


def run(
    base: Path,
    adapter: Path,
    workdir: Path,
    *,
    flush_ms: float = 200.0,
    rate: float = 50.0,
    seconds: float = 3.0,
    threads: int = 1,
) -> Kill9Result:
    """Serve ``rate`` predictions per second for ``seconds``, then SIGKILL the daemon."""
    workdir.mkdir(parents=True, exist_ok=True)
    state_dir = workdir / "state"
    _register(state_dir, base, adapter)
    config = workdir / "adaptd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": str(state_dir),
                "model": {
                    "base": str(base),
                    "labels": list(LABELS),
                    "threads": threads,
                    "max_length": 64,
                },
                "server": {"port": 0},
                "serving": {"log_flush_ms": flush_ms, "registry_poll_s": 3600},
                "logging": {"level": "WARNING"},
            }
        )
    )
    notify = workdir / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    package_root = str(Path(adaptd.__file__).resolve().parents[1])
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify),
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    command = [sys.executable, "-m", "adaptd", "serve", "--role", "serve", "--config", str(config)]
    proc = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    answered: list[tuple[float, str]] = []
    try:
        sock.settimeout(180)
        message = sock.recv(4096).decode()
        match = re.search(r"on [\d.]+:(\d+)", message)
        if not message.startswith("READY=1") or match is None:
            raise RuntimeError(f"the daemon did not start: {message!r}")
        url = f"http://127.0.0.1:{match.group(1)}"
        with httpx.Client(base_url=url, timeout=30) as client:
            started = time.monotonic()
            next_at = started
            n = 0
            while time.monotonic() - started < seconds:
                next_at += 1.0 / rate
                if (pause := next_at - time.monotonic()) > 0:
                    time.sleep(pause)
                body = {"inputs": [f"a steady stream of opinions, number {n}"]}
                response = client.post("/v1/predict", json=body)
                if response.status_code == 200:
                    answered.append((time.monotonic(), response.json()["predictions"][0]["id"]))
                n += 1
            elapsed = time.monotonic() - started
            proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        sock.close()
    stored = _stored_ids(state_dir)
    lost_ages = [killed_at - t for t, pid in answered if pid not in stored]
    flush_s = flush_ms / 1000.0
    return Kill9Result(
        flush_ms=flush_ms,
        rate_per_s=len(answered) / elapsed,
        answered=len(answered),
        stored=len(stored & {pid for _, pid in answered}),
        lost=len(lost_ages),
        answered_in_last_flush=sum(1 for t, _ in answered if killed_at - t <= flush_s),
        oldest_lost_age_s=max(lost_ages) if lost_ages else None,
    )
