"""A :class:`RegistryPort` over the store's repository functions, for tests of the job.

The real registry (``adaptd.adapters.registry``) adds compatibility checks and events; the job
only relies on what this does too: copy the files under a content-hash version, record status.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

# The real version id: the job checks a champion's files against it before training on them.
from adaptd.adapters.layout import content_hash
from adaptd.storage import repository as repo
from adaptd.storage.records import AdapterRecord


@dataclass
class StoreRegistry:
    engine: Engine
    adapters_dir: Path
    calls: list[str] = field(default_factory=list)

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
        version = content_hash(src_dir)
        dest = self.adapters_dir / version
        tmp = self.adapters_dir / f".{version}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(src_dir, tmp)
        tmp.replace(dest)
        repo.add_adapter(
            self.engine,
            AdapterRecord(
                version=version,
                status="candidate",
                path=str(dest),
                created=now,
                parent=parent,
                reason=reason,
                data_window=data_window,
                metrics=metrics,
                config=config,
            ),
        )
        self.calls.append(f"import {version}")
        return version

    def promote(
        self,
        version: str,
        now: datetime,
        *,
        reason: str,
        verdict: dict[str, Any],
        expect_active: str | None = None,
    ) -> None:
        repo.set_adapter_fields(self.engine, version, verdict=verdict)
        repo.switch_active_adapter(self.engine, version, now, expect_active=expect_active)
        self.calls.append(f"promote {version}")

    def record_verdict(self, version: str, now: datetime, *, verdict: dict[str, Any]) -> None:
        repo.set_adapter_fields(self.engine, version, verdict=verdict)
        self.calls.append(f"verdict {version}")

    def reject(self, version: str, now: datetime, *, verdict: dict[str, Any], reason: str) -> None:
        repo.set_adapter_fields(self.engine, version, status="rejected", verdict=verdict)
        self.calls.append(f"reject {version}")
