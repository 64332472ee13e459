from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import typer

from adaptd.cli.common import ConfigOption, JsonOption, emit_json, load
from adaptd.errors import AdaptdError


def status(
    url: str | None = typer.Option(
        None, help="Daemon base URL (default: server.host/port from the config)."
    ),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show what a running daemon is doing: adapter, queue, log writer, policies, retrain."""
    settings = load(config)
    base = url or f"http://{settings.server.host}:{settings.server.port}"
    try:
        with urllib.request.urlopen(f"{base.rstrip('/')}/v1/status", timeout=10) as response:
            document: dict[str, Any] = json.load(response)
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as e:
        raise AdaptdError(f"no daemon answering at {base}: {e}") from e
    if as_json:
        emit_json(document)
        return
    for key, value in document.items():
        text = json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
        print(f"{key:<12} {text[:200]}")
