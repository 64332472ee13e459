"""Promotions pushed to every host the moment they commit (PostgreSQL ``LISTEN``/``NOTIFY``).

Each switch of the active adapter sends ``NOTIFY adaptd_registry`` in its own transaction
(:func:`adaptd.storage.repository.switch_active_adapter`), which PostgreSQL delivers at commit to
every session listening. A :class:`RegistryListener` keeps one such session per daemon and calls
``on_change`` for each notification, so a replica on another host starts building the new
version within milliseconds instead of at its next registry poll (``serving.registry_poll_s``,
which stays the fallback: a notification is lost while the session is down, so ``on_change`` is
also called after every (re)connect).

SQLite has no notifications: it is one host, where the promoting process wakes its own swapper
and another process's promotion is seen at the next poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine, create_engine
from sqlalchemy.pool import NullPool

logger = logging.getLogger(__name__)

#: the channel every active-adapter switch notifies (payload: the new active version)
REGISTRY_CHANNEL = "adaptd_registry"


class RegistryListener:
    """A thread holding a ``LISTEN`` session of its own; reconnects after ``retry_s``."""

    def __init__(
        self,
        engine: Engine,
        on_change: Callable[[], None],
        *,
        retry_s: float = 5.0,
        wait_s: float = 1.0,
    ) -> None:
        self.on_change = on_change
        self.retry_s = retry_s
        # How long one wait for notifications blocks: the bound on noticing stop().
        self.wait_s = wait_s
        # Its own engine without a pool: the listening session is never lent to other work,
        # and closing it ends the session.
        self._engine = create_engine(
            engine.url, poolclass=NullPool, connect_args={"connect_timeout": 5}
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: set once the session listens (tests and status wait on it)
        self.listening = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="adaptd-registry-listen", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._engine.dispose()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._listen()
                failures = 0
            except Exception as e:  # the store restarting, a network cut: the poll covers it
                self.listening.clear()
                failures += 1
                log = logger.warning if failures == 1 else logger.debug
                log("registry notifications interrupted (polling meanwhile): %s", e)
                self._stop.wait(self.retry_s)

    def _listen(self) -> None:
        raw = self._engine.raw_connection()
        try:
            conn = raw.driver_connection
            assert conn is not None
            conn.autocommit = True
            conn.execute(f"LISTEN {REGISTRY_CHANNEL}")
            self.listening.set()
            self.on_change()  # whatever was promoted while no session listened
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=self.wait_s):
                    self.on_change()
        except Exception:
            # The session broke (the server restarted): discard it. Handed back as it is, the
            # pool would try to roll it back and log that failure with a traceback of its own.
            raw.invalidate()
            raise
        finally:
            self.listening.clear()
            raw.close()
