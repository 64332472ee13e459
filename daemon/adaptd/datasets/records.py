from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Example:
    """One text, with its label when known, its group attributes and when it was seen."""

    text: str
    label: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    timestamp: datetime | None = None
