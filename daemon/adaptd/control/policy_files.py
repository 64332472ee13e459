"""The configured policy files, checked against the signals the configured monitors export.

What the daemon calls at start-up and on SIGHUP, and what ``adaptd policy validate`` uses::

    policies, errors = load_configured_policies(settings)
    loop.reload(settings.scheduler, policies, errors)   # errors: previous policies stay
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from adaptd.config import Settings
from adaptd.policy.loading import PolicyError, load_policies
from adaptd.policy.schema import Policy
from adaptd.signals import SignalSpec

logger = logging.getLogger(__name__)


def signal_catalog(settings: Settings) -> Mapping[str, SignalSpec] | None:
    """The signals the configured monitors export (they depend on `monitors.attributes` and
    `model.labels`), or None when the monitors' catalog is not installed."""
    try:
        from adaptd.monitoring.catalog import known_signals  # type: ignore[import-not-found]
    except ImportError:
        logger.warning("signal names not checked: the monitors' catalog is not available")
        return None
    catalog: Mapping[str, SignalSpec] = known_signals(
        list(settings.monitors.attributes), list(settings.model.labels)
    )
    return catalog


def load_configured_policies(
    settings: Settings, paths: Sequence[Path] | None = None
) -> tuple[list[Policy], list[PolicyError]]:
    """The policies of ``paths`` (default: the config's `policies`) and every error in them."""
    return load_policies(
        list(settings.policies if paths is None else paths), signal_catalog(settings)
    )
