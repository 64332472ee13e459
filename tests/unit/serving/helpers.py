"""Shared builders for the serving tests: a tiny base, real LoRA adapters, a started daemon."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from adaptd.adapters import registry
from adaptd.config import Settings
from adaptd.modeling.base import inspect_base
from adaptd.storage import migrate
from adaptd.storage.engine import make_engine
from tests.unit.adapters.builders import LABELS, build_adapter, build_base

__all__ = ["LABELS", "build_adapter", "build_base", "register", "settings_for", "store_for"]

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def settings_for(state_dir: Path, base: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for a daemon on ``base`` with a SQLite store in ``state_dir``, port 0."""
    # The token itself never goes in the config: tests/conftest.py sets this variable to s3cret.
    admin = {"env": "ADAPTD_TEST_ADMIN_TOKEN"}
    server = {"host": "127.0.0.1", "port": 0, "admin_token": admin, "max_inputs": 8}
    model = {"base": str(base), "labels": list(LABELS), "max_length": 16, "threads": 1}
    serving = {"registry_poll_s": 3600.0, "log_flush_ms": 20.0, "max_wait_ms": 1.0}
    server.update(sections.pop("server", {}))
    model.update(sections.pop("model", {}))
    serving.update(sections.pop("serving", {}))
    return Settings(state_dir=state_dir, server=server, model=model, serving=serving, **sections)


def store_for(settings: Settings) -> Engine:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.store_url)
    migrate.upgrade(engine)
    return engine


def register(
    engine: Engine,
    settings: Settings,
    adapter_dir: Path,
    *,
    promote: bool = True,
    labels: Sequence[str] = LABELS,
) -> str:
    """Import ``adapter_dir`` into the registry (and promote it), as the CLI would."""
    base = inspect_base(str(settings.model.base), labels)
    record = registry.import_adapter(
        engine, settings.adapters_dir, adapter_dir, base=base, labels=labels, now=NOW
    )
    if promote:
        registry.promote(engine, record.version, NOW, reason="test")
    return record.version
