"""Single flight for retraining: at most one run at a time, later requests coalesced.

A second retrain decided while one runs would train on nearly the same data and race the first
to promotion, so it is not queued: the caller records it as coalesced. The slot is a small
thread-safe record, separate from the scheduler, so the rule holds however the run is started.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """Who holds the slot: the policy whose decision started the run, and when."""

    policy: str
    started: datetime


class RetrainSlot:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holder: Holder | None = None
        self._coalesced = 0
        self._last_finished: datetime | None = None
        self._last_error: str | None = None

    def claim(self, policy: str, now: datetime) -> Holder | None:
        """Take the slot and return None, or count a coalesced request and return the holder."""
        with self._lock:
            if self._holder is not None:
                self._coalesced += 1
                return self._holder
            self._holder = Holder(policy=policy, started=now)
            return None

    def release(self, now: datetime, error: str | None = None) -> None:
        with self._lock:
            self._holder = None
            self._last_finished, self._last_error = now, error

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._holder is not None

    def status(self) -> dict[str, Any]:
        with self._lock:
            holder = self._holder
            return {
                "running": holder is not None,
                "policy": holder.policy if holder else None,
                "started": holder.started.isoformat() if holder else None,
                "coalesced": self._coalesced,
                "last_finished": self._last_finished.isoformat() if self._last_finished else None,
                "last_error": self._last_error,
            }
