"""A real ``adaptd serve`` process for the fault benchmarks: its own interpreter, real HTTP, a
SQLite store in a work directory, the port read from its sd_notify READY message."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

import adaptd

LABELS = ("negative", "positive")


@dataclass(frozen=True, slots=True)
class Daemon:
    url: str
    proc: subprocess.Popen[bytes]
    state_dir: Path


@contextmanager
def serve(
    base: Path,
    adapter: Path,
    workdir: Path,
    *,
    serving: dict[str, Any] | None = None,
    threads: int = 1,
) -> Iterator[Daemon]:
    """Start ``adaptd serve --role serve`` on ``adapter``; killed on exit if still running."""
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
                "serving": {"registry_poll_s": 3600, **(serving or {})},
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
    try:
        sock.settimeout(180)
        message = sock.recv(4096).decode()
        match = re.search(r"on [\d.]+:(\d+)", message)
        if not message.startswith("READY=1") or match is None:
            raise RuntimeError(f"the daemon did not start: {message!r}")
        yield Daemon(f"http://127.0.0.1:{match.group(1)}", proc, state_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        sock.close()


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


def stored_ids(state_dir: Path) -> set[str]:
    from sqlalchemy import select

    from adaptd.storage import tables
    from adaptd.storage.engine import make_engine

    engine = make_engine(f"sqlite:///{state_dir / 'adaptd.db'}")
    try:
        with engine.connect() as conn:
            return {row.id for row in conn.execute(select(tables.predictions.c.id))}
    finally:
        engine.dispose()
