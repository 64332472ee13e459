"""What the retrain job needs from the adapter registry, as a small Protocol.

The job never touches adapter rows or files itself: it hands a checked adapter directory to
``import_candidate`` and then promotes, records a verdict (approval pending) or rejects. The
composition root passes :class:`AdaptersRegistry` (the real :mod:`adaptd.adapters.registry`);
tests may pass anything with these methods.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine

from adaptd.modeling.base import BaseModelInfo
from adaptd.storage.settings import DEFAULT_ADAPTER_MAX_BYTES

SOURCE = "retraining"


class RegistryPort(Protocol):
    def import_candidate(
        self,
        src_dir: Path,
        *,
        now: datetime,
        parent: str | None,
        reason: str,
        data_window: dict[str, Any],
        metrics: dict[str, Any],
        config: dict[str, Any],
    ) -> str:
        """Copy the adapter into the registry as a candidate; returns its version."""
        ...

    def promote(
        self,
        version: str,
        now: datetime,
        *,
        reason: str,
        verdict: dict[str, Any],
        expect_active: str | None = None,
    ) -> None:
        """Make ``version`` active; with ``expect_active``, only if that version is still the
        active one (:class:`adaptd.errors.ActiveChangedError` otherwise, nothing changed)."""
        ...

    def record_verdict(self, version: str, now: datetime, *, verdict: dict[str, Any]) -> None:
        """A validated candidate that waits for an operator (``require_approval``)."""
        ...

    def reject(
        self, version: str, now: datetime, *, verdict: dict[str, Any], reason: str
    ) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class AdaptersRegistry:
    """:class:`RegistryPort` over :mod:`adaptd.adapters.registry` (imported when first used, so
    the retraining part does not depend on the registry's module at import time)."""

    engine: Engine
    adapters_dir: Path
    base: BaseModelInfo
    #: ``store.adapter_max_bytes``: the files of a larger candidate stay on this host only
    max_store_bytes: int = DEFAULT_ADAPTER_MAX_BYTES

    def _registry(self) -> Any:
        return importlib.import_module("adaptd.adapters.registry")

    def import_candidate(
        self,
        src_dir: Path,
        *,
        now: datetime,
        parent: str | None,
        reason: str,
        data_window: dict[str, Any],
        metrics: dict[str, Any],
        config: dict[str, Any],
    ) -> str:
        record = self._registry().import_adapter(
            self.engine,
            self.adapters_dir,
            src_dir,
            base=self.base,
            labels=self.base.labels,
            now=now,
            parent=parent,
            reason=reason,
            data_window=data_window,
            status="candidate",
            metrics=metrics,
            config=config,
            source=SOURCE,
            max_store_bytes=self.max_store_bytes,
        )
        return str(record.version)

    def promote(
        self,
        version: str,
        now: datetime,
        *,
        reason: str,
        verdict: dict[str, Any],
        expect_active: str | None = None,
    ) -> None:
        self._registry().promote(
            self.engine,
            version,
            now,
            reason=reason,
            verdict=verdict,
            base=self.base,
            source=SOURCE,
            expect_active=expect_active,
        )

    def record_verdict(self, version: str, now: datetime, *, verdict: dict[str, Any]) -> None:
        self._registry().record_verdict(self.engine, version, now, verdict=verdict, source=SOURCE)

    def reject(self, version: str, now: datetime, *, verdict: dict[str, Any], reason: str) -> None:
        self._registry().reject(
            self.engine, version, now, verdict=verdict, reason=reason, source=SOURCE
        )
