"""A throwaway PostgreSQL server for the tests, from Debian's packages, reachable only by us.

It listens on no TCP port at all (``listen_addresses=''``): only on a Unix socket in a private
0700 directory, and it asks for a random password (scram-sha-256) even there. A developer's
machine running the tests exposes nothing to other local users or to the network, which a
``trust`` server on 127.0.0.1 did (any local process could connect as superuser).

Set ADAPTD_TEST_POSTGRES_URL to use a server you already run instead. When neither works the
tests that need PostgreSQL are skipped with the reason, never silently passed.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL

USER = "adaptd"
#: the socket file is named after the port; the directory is private, so any port will do
PORT = 5432


def _bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def socket_url(socket_dir: Path, password: str, database: str = "postgres") -> str:
    """The SQLAlchemy URL of a server on a Unix socket: libpq's ``host=/dir`` query argument."""
    url = URL.create(
        "postgresql+psycopg",
        username=USER,
        password=password,
        database=database,
        query={"host": str(socket_dir), "port": str(PORT)},
    )
    return url.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """A server started by :func:`private_postgres`: its URL, and stop/start for fault tests
    (the data directory survives a stop, as after a real restart)."""

    url: str
    bindir: Path
    data: Path
    workdir: Path
    sockets: Path
    as_user: tuple[str, ...]

    def start(self) -> None:
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.workdir / "log"),
                "-w",
                "-o",
                f"-p {PORT} -k {self.sockets} -c listen_addresses='' -c fsync=off "
                "-c unix_socket_permissions=0700",
                "start",
            ],
            check=True,
            capture_output=True,
        )

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (clients see their connection closed), as a restart
        of the service does; ``immediate`` is a crash."""
        subprocess.run(
            [
                *self.as_user,
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                mode,
                "-w",
                "stop",
            ],
            check=False,
            capture_output=True,
        )


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a SQLAlchemy URL of a fresh server; raise RuntimeError with the reason if none."""
    if url := os.environ.get("ADAPTD_TEST_POSTGRES_URL"):
        yield url
        return
    with private_postgres() as server:
        yield server.url


def restartable_postgres() -> Iterator[PostgresServer]:
    """For a pytest fixture: a server of our own that the test may stop, or a skip naming why
    none can be started (never ADAPTD_TEST_POSTGRES_URL's server: stopping it is not ours)."""
    import pytest

    try:
        with private_postgres() as server:
            yield server
    except RuntimeError as e:
        pytest.skip(f"PostgreSQL unavailable: {e}")


@contextmanager
def private_postgres() -> Iterator[PostgresServer]:
    """A fresh server of our own (never ADAPTD_TEST_POSTGRES_URL: the caller may stop it);
    raise RuntimeError with the reason if none can be started."""
    bindir = _bin_dir()
    if bindir is None:
        raise RuntimeError(
            "no PostgreSQL server binaries (initdb) found; apt-get install postgresql"
        )
    # PostgreSQL refuses to run as root; run it as the 'postgres' user when we are root.
    as_user: tuple[str, ...] = ()
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise RuntimeError("running as root and runuser is missing")
        as_user = ("runuser", "-u", "postgres", "--")
    workdir = Path(tempfile.mkdtemp(prefix="adaptd-pg-"))  # 0700
    data = workdir / "data"
    sockets = workdir / "sockets"
    password = secrets.token_urlsafe(24)
    server = PostgresServer(
        url=socket_url(sockets, password),
        bindir=bindir,
        data=data,
        workdir=workdir,
        sockets=sockets,
        as_user=as_user,
    )
    try:
        sockets.mkdir(mode=0o700)
        pwfile = workdir / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if as_user:
            for path in (workdir, sockets, pwfile):
                shutil.chown(path, user="postgres")
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
            ],
            check=True,
            capture_output=True,
        )
        pwfile.unlink()
        server.start()
    except (subprocess.CalledProcessError, OSError, LookupError) as e:
        stderr = getattr(e, "stderr", b"") or b""
        shutil.rmtree(workdir, ignore_errors=True)
        raise RuntimeError(f"could not start PostgreSQL: {e} {stderr.decode()[-300:]}") from e
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
