"""What every command shares: the --config option, loading, opening the store, JSON output."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, is_dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from adaptd.config import Settings, load_settings
from adaptd.logsetup import configure_logging
from adaptd.privacy.logs import log_filter
from adaptd.storage.engine import open_store as open_store  # the CLI commands import it from here

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (default adaptd.yaml, or $ADAPTD_CONFIG).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def load(config: Path | None) -> Settings:
    settings = load_settings(config)
    configure_logging(
        settings.logging.level,
        json_lines=settings.logging.json_lines,
        text_filter=log_filter(settings.privacy),
    )
    return settings


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, bytes):
        return None
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, default=_default, indent=2, sort_keys=False) + "\n")
