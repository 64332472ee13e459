"""The tests' own PostgreSQL (tests/pg.py) is reachable by nobody else: no TCP listener, a Unix
socket in a private 0700 directory, and a password even there."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import OperationalError

from adaptd.storage.engine import make_engine

pytestmark = pytest.mark.postgres


def test_the_test_server_listens_on_a_private_socket_with_a_password(postgres_url: str) -> None:
    if os.environ.get("ADAPTD_TEST_POSTGRES_URL"):
        pytest.skip("ADAPTD_TEST_POSTGRES_URL names a server these tests did not start")
    url = make_url(postgres_url)
    socket_dir = Path(str(url.query["host"]))
    assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(socket_dir.parent.stat().st_mode) == 0o700
    engine = make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW listen_addresses")).scalar() == ""
            method = conn.execute(
                text("SELECT auth_method FROM pg_hba_file_rules WHERE type = 'local'")
            ).scalar()
            assert method == "scram-sha-256"
    finally:
        engine.dispose()
    wrong = make_engine(url.set(password="wrong").render_as_string(hide_password=False))
    try:
        with pytest.raises(OperationalError, match="password authentication failed"):
            with wrong.connect():
                pass
    finally:
        wrong.dispose()
