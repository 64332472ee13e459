"""What the control loop receives from the daemon: the seam between the service's lifecycle and
the control role.

The service builds one :class:`ControlContext` and hands it to
:func:`adaptd.control.wiring.start_control`; the control side never imports the service, so the
two can be read, tested and layered separately (the import contract in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from adaptd.config import Settings
from adaptd.metrics import Metrics

if TYPE_CHECKING:
    from adaptd.serving.host import ModelHost


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlContext:
    """What the control loop receives from the daemon in :meth:`Service._start_control`."""

    engine: Engine
    metrics: Metrics
    settings: Callable[[], Settings]
    #: None in the control role (no model is served there)
    host: ModelHost | None
    #: add a section to /v1/status: ``register_status("control", loop.status)``
    register_status: Callable[[str, Callable[[], dict[str, Any]]], None]
    #: called with the new settings on SIGHUP; raising keeps the previous config (and is shown)
    register_reload: Callable[[Callable[[Settings], None]], None]
    #: teardown, run at shutdown after HTTP drained and the prediction log was flushed, while
    #: the batcher still serves ``predict`` (LIFO with the other resources)
    on_shutdown: Callable[[Callable[[], object]], None]
    #: after a promotion in-process: swap now instead of at the next registry poll
    request_swap: Callable[[], str | None]
    #: label a few texts with the active adapter (counterfactual probe); None without serving
    predict: Callable[[Sequence[str]], list[str]] | None = None
