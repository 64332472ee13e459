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
from adaptd.policy.loading import PolicyError, SignalNames, load_policies
from adaptd.policy.schema import Policy
from adaptd.signals import SignalSpec

logger = logging.getLogger(__name__)


#: stands for an attribute when the catalog is asked which names it exports per attribute
_PROBE = "attribute-probe"


def signal_catalog(settings: Settings) -> SignalNames | None:
    """The signals the configured monitors export (they depend on `monitors.attributes` and
    `model.labels`), or None when the monitors' catalog is not installed."""
    try:
        from adaptd.monitoring.catalog import known_signals  # type: ignore[import-not-found]
    except ImportError:
        logger.warning("signal names not checked: the monitors' catalog is not available")
        return None
    attributes = list(settings.monitors.attributes)
    labels = list(settings.model.labels)
    catalog: Mapping[str, SignalSpec] = known_signals(attributes, labels)
    # The names one more attribute would add: how a policy naming an unlisted attribute is told
    # to list it, instead of being shown the signals that do exist.
    without: Mapping[str, SignalSpec] = known_signals([], labels)
    probed: Mapping[str, SignalSpec] = known_signals([_PROBE], labels)
    per_attribute = sorted(
        name.replace(_PROBE, "{attribute}") for name in probed if name not in without
    )
    return SignalNames(known=catalog, attributes=attributes, per_attribute=per_attribute)


def load_configured_policies(
    settings: Settings, paths: Sequence[Path] | None = None
) -> tuple[list[Policy], list[PolicyError]]:
    """The policies of ``paths`` (default: the config's `policies`) and every error in them."""
    return load_policies(
        list(settings.policies if paths is None else paths), signal_catalog(settings)
    )
