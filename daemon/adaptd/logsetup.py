"""Logging for a service: stderr, level from config, optionally one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from adaptd.security import mask_secrets

_PLAIN = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonLineFormatter(logging.Formatter):
    """journald, Loki and friends parse this without a regex."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # rendered (and redacted) by adaptd.privacy.logs
            payload["exc"] = record.exc_text
        payload.update(getattr(record, "fields", {}))
        return json.dumps(payload, default=str)


class MaskingFormatter(logging.Formatter):
    """Masks URL passwords in every line, whoever logged it (our code, SQLAlchemy, a driver's
    exception text in a traceback)."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(self.inner.format(record))


def configure_logging(
    level: str = "INFO", *, json_lines: bool = False, text_filter: logging.Filter | None = None
) -> None:
    """Idempotent: replaces the handler adaptd installed before (SIGHUP may change the level).
    ``text_filter`` (adaptd.privacy.logs) redacts every line the handler writes."""
    remove_handler()
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler._adaptd = True  # type: ignore[attr-defined]
    inner = JsonLineFormatter() if json_lines else logging.Formatter(_PLAIN)
    handler.setFormatter(MaskingFormatter(inner))
    if text_filter is not None:
        handler.addFilter(text_filter)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries chatty at INFO that an operator does not need.
    for noisy in ("alembic", "httpx", "urllib3", "apscheduler.executors", "filelock"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


def remove_handler() -> None:
    """Take the handler :func:`configure_logging` installed off the root logger, if any."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_adaptd", False):
            root.removeHandler(handler)
