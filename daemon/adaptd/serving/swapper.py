"""The swapper: keeps the model the batcher serves in line with the store's active version.

A watcher thread polls the registry every ``serving.registry_poll_s`` (so a promotion made by
the CLI, the control loop or another host reaches this daemon), builds the new version off the
request path and offers it to the batcher, which switches between two micro-batches. Admin
promotions and rollbacks made through this daemon's HTTP API swap at once.

Serving keeps serving whatever the registry says:

- A version that cannot be built here is *refused*, then tried again with exponential backoff
  (``serving.refused_retry_s`` doubling up to ``serving.refused_retry_max_s``): a refusal for a
  passing reason heals by itself, one for a permanent reason costs a build now and then.
- Meanwhile the daemon *falls back*: it keeps serving what it served, or, when it has served
  nothing yet (a start with a broken active version), builds the most recently promoted earlier
  version that still loads. A fallback is written as an event, shown in status and exported as
  ``adaptd_adapter_fallback`` for an alert; the store's active version is left alone (the
  failure may be this host's alone, and the registry is the operators' to change).
- A failed registry poll changes nothing served; it is reported through ``on_probe`` (the
  store's health in status and ``adaptd_store_up``).

The swapper never touches the store itself: :class:`RegistryPort` is what it asks
(:class:`adaptd.adapters.serving_port.StoreRegistry` in the daemon).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from adaptd import failpoints
from adaptd.errors import StoreError
from adaptd.serving.batcher import Batcher
from adaptd.serving.host import ModelHost, ServingModel, Swap
from adaptd.serving.memory import release_freed_memory, worth_releasing
from adaptd.serving.metrics import AdapterMetrics
from adaptd.storage.records import AdapterRecord

logger = logging.getLogger(__name__)

#: earlier versions tried, newest first, when the active one cannot be built at start
FALLBACK_TRIES = 3


class RegistryPort(Protocol):
    """What the swapper needs from the registry; raises :class:`StoreError` when unreachable."""

    def active(self) -> AdapterRecord | None: ...

    def fallbacks(self) -> list[AdapterRecord]:
        """Earlier active versions, the best to fall back to first."""
        ...

    def files(self, record: AdapterRecord) -> Path:
        """A local directory with ``record``'s files, checked against its content hash (they
        may come from the store: the version may have been imported on another host)."""
        ...

    def promote(self, version: str, reason: str) -> AdapterRecord: ...

    def rollback(self, reason: str) -> AdapterRecord: ...

    def event(self, kind: str, message: str, **details: Any) -> None: ...


def retry_delay(attempts: int, *, first_s: float, max_s: float) -> float:
    """Seconds before try ``attempts + 1`` of a refused version (exponential backoff)."""
    return float(min(max_s, first_s * 2 ** max(0, attempts - 1)))


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    reason: str
    attempts: int
    #: monotonic time of the next try
    retry_at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySettings:
    first_s: float
    max_s: float
    poll_s: float


class Swapper:
    """The registry watcher and the swaps of one daemon (``host``/``batcher`` None: the control
    role, where the watcher only probes the store)."""

    def __init__(
        self,
        registry: RegistryPort,
        metrics: AdapterMetrics,
        *,
        host: ModelHost | None,
        batcher: Batcher | None,
        settings: Callable[[], RetrySettings],
        on_probe: Callable[[str | None], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.host = host
        self.batcher = batcher
        self.settings = settings
        self.on_probe = on_probe
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._refused: dict[str, Refusal] = {}
        #: the version served instead of the store's active one, and that active one
        self._fallback: tuple[str, str] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        #: set by a swap that dropped a large model (a merged copy): its memory is handed back by
        #: the watcher, off the batcher's thread
        self._release_due = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ watcher

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._watch, name="adaptd-registry-watch", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wake(self) -> None:
        self._wake.set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings().poll_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sync()
            except Exception:
                logger.exception("registry watcher")
            self._release_replaced()

    def _release_replaced(self) -> None:
        if self._release_due.is_set():
            self._release_due.clear()
            release_freed_memory()

    # ------------------------------------------------------------------ sync

    def sync(self) -> str | None:
        """Make the store's active adapter the one offered to the batcher (or fall back), building
        it off the request path when needed. Returns the version offered or served (None: none)."""
        host = self.host
        with self._lock:
            try:
                record = self.registry.active()
            except StoreError as e:
                self.on_probe(str(e))
                return host.target_version() if host is not None else None
            self.on_probe(None)
            if host is None or self.batcher is None:
                return None
            serving = host.target_version()
            if record is None or (record.version == serving and self._fallback is None):
                return serving
            refusal = self._refused.get(record.version)
            if refusal is not None and self.monotonic() < refusal.retry_at:
                return self._fall_back(record, serving)
            built = host.ready_for(record.version)
            if built is None:
                try:
                    built = host.build(record.version, self.registry.files(record))
                except Exception as e:  # anything a build raises: the version cannot serve here
                    self._refuse(record.version, e)
                    return self._fall_back(record, serving)
                self.metrics.load_duration.labels("adapter").observe(built.load_seconds)
                if serving is not None:
                    failpoints.reached("swap.built")
            self._refused.pop(record.version, None)
            self._offer(built)
            if self._fallback is not None:
                logger.info("adapter %s builds again; fallback over", record.version[:12])
                self._fallback = None
                self.metrics.fallback.set(0)
            return built.version

    def _offer(self, built: ServingModel) -> None:
        assert self.host is not None and self.batcher is not None
        self.host.offer(built)
        self.batcher.wake()

    def _refuse(self, version: str, error: Exception) -> None:
        previous = self._refused.get(version)
        attempts = previous.attempts + 1 if previous is not None else 1
        retry = self.settings()
        delay = retry_delay(attempts, first_s=retry.first_s, max_s=retry.max_s)
        self._refused[version] = Refusal(
            reason=str(error), attempts=attempts, retry_at=self.monotonic() + delay
        )
        self.metrics.swap_failures.inc()
        logger.error(
            "adapter %s refused (try %d, next in %.0f s): %s", version[:12], attempts, delay, error
        )

    def _fall_back(self, record: AdapterRecord, serving: str | None) -> str | None:
        """Serve something while ``record`` (the active version) cannot be built."""
        if serving is not None and serving != record.version:
            self._enter_fallback(serving, record)
            return serving
        assert self.host is not None
        try:
            candidates = self.registry.fallbacks()
        except StoreError as e:
            self.on_probe(str(e))
            return serving
        for earlier in [c for c in candidates if c.version != record.version][:FALLBACK_TRIES]:
            refusal = self._refused.get(earlier.version)
            if refusal is not None and self.monotonic() < refusal.retry_at:
                continue
            built = self.host.ready_for(earlier.version)
            if built is None:
                try:
                    built = self.host.build(earlier.version, self.registry.files(earlier))
                except Exception as e:
                    self._refuse(earlier.version, e)
                    continue
            self._offer(built)
            self._enter_fallback(built.version, record)
            return built.version
        return serving

    def _enter_fallback(self, version: str, active: AdapterRecord) -> None:
        if self._fallback == (version, active.version):
            return
        self._fallback = (version, active.version)
        self.metrics.fallback.set(1)
        self.metrics.fallbacks.inc()
        refusal = self._refused.get(active.version)
        reason = refusal.reason if refusal is not None else "it cannot be built here"
        message = (
            f"serving adapter {version[:12]} instead of the active {active.version[:12]}, which "
            f"cannot be built on this host: {reason}"
        )
        logger.error("%s", message)
        try:
            self.registry.event("adapter_fallback", message, version=version, active=active.version)
        except StoreError as e:
            logger.error("fallback event not stored: %s", e)

    # ------------------------------------------------------------------ swaps on request

    def request_swap(self, *, timeout: float = 10.0) -> str | None:
        """Swap to the store's active adapter now and wait until the batcher serves it."""
        version = self.sync()
        self.wait_serving(version, timeout=timeout)
        self._release_replaced()
        return version

    def wait_serving(self, version: str | None, *, timeout: float) -> bool:
        host = self.host
        if host is None or version is None:
            return False
        deadline = time.monotonic() + timeout
        while True:
            active = host.active
            if active is not None and active.version == version:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)

    def on_swap(self, swap: Swap) -> None:
        """The batcher's callback, after it switched models between two batches."""
        if swap.old is not None:
            self.metrics.active.remove(swap.old.version)
        self.metrics.active.labels(swap.new.version).set(1)
        if worth_releasing(swap.released_bytes):
            self._release_due.set()
        logger.info(
            "serving adapter %s (was %s), %.1f ms after it was ready",
            swap.new.version[:12],
            swap.old.version[:12] if swap.old else "none",
            swap.offered_to_serving_s * 1000,
        )

    def promote(self, version: str, reason: str) -> dict[str, Any]:
        """Admin promotion (HTTP): registry first, then swap in-process at once."""
        return self._after_change(self.registry.promote(version, reason).version)

    def rollback(self, reason: str) -> dict[str, Any]:
        return self._after_change(self.registry.rollback(reason).version)

    def _after_change(self, version: str) -> dict[str, Any]:
        serving = self.request_swap() if self.host is not None else None
        refusal = self._refused.get(version)
        return {
            "version": version,
            "status": "active",
            "serving": serving == version and refusal is None,
            **({"refused": refusal.reason} if refusal else {}),
        }

    # ------------------------------------------------------------------ readiness and status

    def last_refusal(self) -> str | None:
        """Why the newest refused version cannot serve (what /readyz says while nothing serves)."""
        if not self._refused:
            return None
        version, refusal = next(reversed(self._refused.items()))
        return f"adapter {version[:12]} refused: {refusal.reason}"

    @property
    def refused(self) -> dict[str, str]:
        return {version: r.reason for version, r in self._refused.items()}

    def status(self) -> dict[str, Any]:
        """The swapper's part of the ``adapter`` section of /v1/status."""
        now = self.monotonic()
        fallback = self._fallback
        return {
            "refused": self.refused,
            "retries": {
                version: {"attempts": r.attempts, "next_in_s": round(max(0.0, r.retry_at - now), 1)}
                for version, r in self._refused.items()
            },
            "fallback": (
                {"serving": fallback[0], "instead_of": fallback[1]}
                if fallback is not None
                else None
            ),
        }
