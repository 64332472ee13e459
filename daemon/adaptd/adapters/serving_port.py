"""The registry as the swapper sees it (:class:`adaptd.serving.swapper.RegistryPort`), bound to
the store: serving never imports the store, the composition root hands it this."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from adaptd.adapters import blobs, registry
from adaptd.errors import StoreError
from adaptd.modeling.base import BaseModelInfo
from adaptd.storage import repository as repo
from adaptd.storage.records import AdapterRecord, Event

#: statuses of earlier active versions, the better fallback first: a retired version was
#: replaced by a promotion, a rolled-back one was judged worse than what came before it
FALLBACK_ORDER = ("retired", "rolled_back")


def _short(e: SQLAlchemyError) -> str:
    return str(getattr(e, "orig", None) or e).strip().splitlines()[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreRegistry:
    engine: Engine
    clock: Callable[[], datetime]
    #: the served base model, to re-check compatibility on promotion (None: control role)
    base: BaseModelInfo | None
    #: this host's cache of adapter files, keyed by content hash (``<state_dir>/adapters``)
    cache_dir: Path
    source: str = "http"

    def active(self) -> AdapterRecord | None:
        try:
            return repo.active_adapter(self.engine)
        except SQLAlchemyError as e:
            raise StoreError(_short(e)) from e

    def fallbacks(self) -> list[AdapterRecord]:
        try:
            records = repo.list_adapters(self.engine)
        except SQLAlchemyError as e:
            raise StoreError(_short(e)) from e
        earlier = [r for r in records if r.status in FALLBACK_ORDER and r.promoted is not None]
        earlier.sort(key=lambda r: r.promoted or r.created, reverse=True)
        earlier.sort(key=lambda r: FALLBACK_ORDER.index(r.status))
        return earlier

    def files(self, record: AdapterRecord) -> Path:
        return blobs.materialize(self.engine, record, self.cache_dir)

    def promote(self, version: str, reason: str) -> AdapterRecord:
        return registry.promote(
            self.engine, version, self.clock(), reason=reason, base=self.base, source=self.source
        )

    def rollback(self, reason: str) -> AdapterRecord:
        return registry.rollback(
            self.engine, self.clock(), reason=reason, base=self.base, source=self.source
        )

    def event(self, kind: str, message: str, **details: Any) -> None:
        try:
            repo.add_events(
                self.engine,
                [
                    Event(
                        ts=self.clock(),
                        kind=kind,
                        source="serving",
                        message=message,
                        details=details,
                    )
                ],
            )
        except SQLAlchemyError as e:
            raise StoreError(_short(e)) from e
