from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text

import adaptd
from adaptd.logsetup import remove_handler
from adaptd.storage import migrate
from adaptd.storage.engine import make_engine
from tests.pg import postgres_server

# The shipped model and the tests never reach a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# The admin bearer token of the tests' daemons (server.admin_token: {env: ...}), inherited by
# the daemons they start as processes.
os.environ["ADAPTD_TEST_ADMIN_TOKEN"] = "s3cret"
# Subprocesses (`python -m adaptd ...`) must import this checkout's package from any cwd.
_PACKAGE_ROOT = str(Path(adaptd.__file__).resolve().parents[1])
os.environ["PYTHONPATH"] = os.pathsep.join(
    [_PACKAGE_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
)


@pytest.fixture(autouse=True)
def _no_log_handler_outlives_its_test() -> Iterator[None]:
    """A test that starts a service installs adaptd's stderr handler on the root logger, bound
    to the stream pytest captures that test into and closes after it: a later test's thread
    logging through it printed "Logging error ... I/O operation on closed file"."""
    yield
    remove_handler()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with postgres_server() as url:
            yield url
    except RuntimeError as e:
        pytest.skip(f"PostgreSQL unavailable: {e}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'adaptd.db'}"


@pytest.fixture
def pg_database(postgres_url: str) -> Iterator[str]:
    """A fresh database on the session's server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(postgres_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    # Through SQLAlchemy's URL: the test server's URL carries its socket in the query string.
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a store test on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'adaptd.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def empty_engine(store_url: str) -> Iterator[Engine]:
    """A store with no schema yet, on each backend."""
    eng = make_engine(store_url)
    yield eng
    eng.dispose()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    """A migrated store on each backend."""
    eng = make_engine(store_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    migrate.upgrade(eng)
    yield eng
    eng.dispose()
