"""Promotions pushed over PostgreSQL NOTIFY, on a real server: a switch committed through one
engine wakes a listener on another at once; a switch that rolls back wakes nobody; a listening
session killed by the server is re-established, and the listener then looks again (a
notification sent while it was down is lost, the wake after reconnecting covers it)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from adaptd.errors import ActiveChangedError
from adaptd.storage import migrate
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine
from adaptd.storage.notify import RegistryListener
from adaptd.storage.records import AdapterRecord

T0 = datetime(2026, 11, 30, tzinfo=UTC)

pytestmark = pytest.mark.postgres


class Wakes:
    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def expect(self, timeout: float) -> float:
        """Seconds until the next wake; fails after ``timeout``."""
        start = time.monotonic()
        assert self.event.wait(timeout), "no wake"
        self.event.clear()
        return time.monotonic() - start


@pytest.fixture
def pg(pg_database: str) -> Iterator[Engine]:
    engine = make_engine(pg_database)
    migrate.upgrade(engine)
    for version in ("aaa111", "bbb222"):
        record = AdapterRecord(
            version=version, status="candidate", path=f"/x/{version}", created=T0
        )
        repo.add_adapter(engine, record)
    yield engine
    engine.dispose()


def test_a_committed_switch_wakes_a_listener_on_another_session(
    pg: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    wakes = Wakes()
    listener = RegistryListener(pg, wakes, retry_s=0.2, wait_s=0.2)
    listener.start()
    try:
        assert listener.listening.wait(10)
        wakes.expect(5)  # the look after connecting
        promoter = make_engine(str(pg.url.render_as_string(hide_password=False)))
        start = time.monotonic()
        repo.switch_active_adapter(promoter, "aaa111", T0)
        assert wakes.expect(5) < 1.0, time.monotonic() - start

        # Rolled back (another version became active meanwhile): nothing to wake for.
        with pytest.raises(ActiveChangedError):
            repo.switch_active_adapter(promoter, "bbb222", T0, expect_active="zzz999")
        assert not wakes.event.wait(1.0)
        promoter.dispose()

        # The server ends the listening session: the listener reconnects and looks again.
        with pg.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE query LIKE 'LISTEN adaptd_registry%' AND pid <> pg_backend_pid()"
                )
            ).all()
            conn.commit()
        assert ended == [(True,)]
        with caplog.at_level(logging.WARNING):
            wakes.expect(10)
        # One line says so; the broken session is discarded, not handed back to the pool
        # (whose failed reset would log a traceback of its own).
        assert [r for r in caplog.records if r.exc_info] == []
        assert any("notifications interrupted" in r.getMessage() for r in caplog.records)
        assert listener.listening.wait(10)
        repo.activate_adapter(pg, "bbb222", T0)
        wakes.expect(5)
    finally:
        listener.stop(5)
    assert listener._thread is not None and not listener._thread.is_alive()
