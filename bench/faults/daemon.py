"""A real ``adaptd serve`` process for the fault benchmarks: its own interpreter, real HTTP, a
SQLite store in a work directory, the port read from its sd_notify READY message."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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
    config = write_config(
        workdir,
        base,
        state_dir,
        serving={"registry_poll_s": 3600, **(serving or {})},
        threads=threads,
    )
    with start(config, workdir, state_dir) as daemon:
        yield daemon


def write_config(
    workdir: Path, base: Path, state_dir: Path, *, threads: int = 1, **sections: Any
) -> Path:
    """An ``adaptd.yaml`` for a daemon on ``base`` with a SQLite store in ``state_dir``, any
    port, warnings only; ``sections`` are merged in (``serving={...}``, ``scheduler={...}``)."""
    doc: dict[str, Any] = {
        "state_dir": str(state_dir),
        "model": {"base": str(base), "labels": list(LABELS), "threads": threads, "max_length": 64},
        "server": {"port": 0},
        "logging": {"level": "WARNING"},
    }
    for name, section in sections.items():
        doc[name] = {**doc.get(name, {}), **section}
    config = workdir / "adaptd.yaml"
    config.write_text(yaml.safe_dump(doc))
    return config


@contextmanager
def start(
    config: Path,
    workdir: Path,
    state_dir: Path,
    *,
    role: str = "serve",
    env: dict[str, str] | None = None,
    timeout_s: float = 600.0,
) -> Iterator[Daemon]:
    """Run ``adaptd serve --role ROLE --config CONFIG`` until READY (the port is read from the
    sd_notify message; a start can take minutes on a loaded 2-core machine); on exit it is
    killed if still running. ``env`` is added to the process's
    environment (``ADAPTD_FAILPOINT=...``)."""
    # A socket path is limited to 107 bytes, which a pytest tmp_path can exceed: a short
    # private directory of its own.
    notify_dir = Path(tempfile.mkdtemp(prefix="adaptd-notify-"))
    notify = notify_dir / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    package_root = str(Path(adaptd.__file__).resolve().parents[1])
    full_env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify),
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        **(env or {}),
    }
    full_env.pop("ADAPTD_CONFIG", None)
    command = [sys.executable, "-m", "adaptd", "serve", "--role", role, "--config", str(config)]
    log = (workdir / "daemon.log").open("ab")
    proc = subprocess.Popen(command, env=full_env, stderr=log)
    try:
        sock.settimeout(0.5)
        deadline = time.monotonic() + timeout_s
        message = ""
        while not message.startswith("READY=1"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "daemon.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the daemon did not start (exit {proc.poll()}): {tail}")
            try:
                message = sock.recv(4096).decode()
            except TimeoutError:
                continue
        match = re.search(r"on [\d.]+:(\d+)", message)
        if match is None:
            raise RuntimeError(f"the daemon did not start: {message!r}")
        yield Daemon(f"http://127.0.0.1:{match.group(1)}", proc, state_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        sock.close()
        log.close()
        shutil.rmtree(notify_dir, ignore_errors=True)


def sqlite_url(state_dir: Path) -> str:
    """The store a daemon with no ``store.url`` uses: SQLite in its state directory."""
    return f"sqlite:///{state_dir / 'adaptd.db'}"


def _register(state_dir: Path, base: Path, adapter: Path, *, url: str | None = None) -> None:
    """Create the store (``url``, else SQLite in ``state_dir``) with ``adapter`` active."""
    from datetime import UTC, datetime

    from adaptd.adapters import registry
    from adaptd.modeling.base import inspect_base
    from adaptd.storage import migrate
    from adaptd.storage.engine import make_engine

    state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(url or sqlite_url(state_dir))
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


def stored_ids(state_dir: Path, *, url: str | None = None) -> set[str]:
    from sqlalchemy import select

    from adaptd.storage import tables
    from adaptd.storage.engine import make_engine

    engine = make_engine(url or sqlite_url(state_dir))
    try:
        with engine.connect() as conn:
            return {row.id for row in conn.execute(select(tables.predictions.c.id))}
    finally:
        engine.dispose()
