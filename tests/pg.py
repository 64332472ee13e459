"""A throwaway PostgreSQL server for the tests, on 127.0.0.1, from Debian's packages.

Set ADAPTD_TEST_POSTGRES_URL to use a server you already run instead. When neither works the
tests that need PostgreSQL are skipped with the reason, never silently passed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh server; raise RuntimeError with the reason if none."""
    if url := os.environ.get("ADAPTD_TEST_POSTGRES_URL"):
        yield url
        return
    bindir = _bin_dir()
    if bindir is None:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb) found; apt-get install postgresql"
        )
    # PostgreSQL refuses to run as root; run it as the 'postgres' user when we are root.
    as_user: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise RuntimeError("running as root and runuser is missing")
        as_user = ["runuser", "-u", "postgres", "--"]
    workdir = Path(tempfile.mkdtemp(prefix="adaptd-pg-"))
    data = workdir / "data"
    port = _free_port()
    try:
        if as_user:
            shutil.chown(workdir, user="postgres")
        subprocess.run(
            [*as_user, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "adaptd"],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *as_user,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(workdir / "log"),
                "-w",
                "-o",
                f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
        )
    except (subprocess.CalledProcessError, OSError, LookupError) as e:
        stderr = getattr(e, "stderr", b"") or b""
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {e} {stderr.decode()[-300:]}") from e
    try:
        yield f"postgresql+psycopg://adaptd@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(workdir, ignore_errors=True)
