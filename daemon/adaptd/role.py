"""What a daemon process does (``adaptd serve --role``). Its own module so that the command line
can offer the choice without importing the service, and with it torch."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ALL = "all"
    SERVE = "serve"
    CONTROL = "control"
