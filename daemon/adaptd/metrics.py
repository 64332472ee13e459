"""Every Prometheus metric adaptd exports, one object per subsystem, on a given registry.

Each subsystem defines its metrics next to the code that writes them (``serving/metrics.py``,
``monitoring/metrics.py``, ``policy/metrics.py``, ``retraining/metrics.py``) and receives its
own object; :class:`Metrics` only assembles them so that one registry holds one daemon's facts.
Names start with ``adaptd_`` and follow Prometheus conventions (``_total``, ``_seconds``, base
units). Label sets are small and fixed: adapter versions, label names, policy names, signal
names, never a text, an id or a free-form value. Tests build a fresh ``CollectorRegistry`` and
read values with ``registry.get_sample_value(...)``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Info

from adaptd.control.metrics import LeaderMetrics
from adaptd.monitoring.metrics import MonitorMetrics
from adaptd.policy.metrics import PolicyMetrics
from adaptd.privacy.metrics import PrivacyMetrics
from adaptd.retention.metrics import RetentionMetrics
from adaptd.retraining.metrics import RetrainMetrics
from adaptd.serving.metrics import AdapterMetrics, LogMetrics, ServingMetrics


class DaemonMetrics:
    """What the service itself owns: its build, config reloads on every role, the store probe."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.build_info = Info("adaptd_build", "Version of adaptd.", registry=registry)
        self.config_reload_errors = Counter(
            "adaptd_config_reload_errors_total",
            "Reloads refused because the config file or a policy file was invalid, or a key "
            "that needs a restart changed (the previous config and policies stay).",
            registry=registry,
        )
        self.config_last_reload_success = Gauge(
            "adaptd_config_last_reload_success",
            "1 when the last load or reload of config and policies succeeded, else 0.",
            registry=registry,
        )
        self.config_last_reload_timestamp = Gauge(
            "adaptd_config_last_reload_timestamp_seconds",
            "Unix time of the last load or reload attempt of config and policies.",
            registry=registry,
        )
        self.store_up = Gauge(
            "adaptd_store_up",
            "1 when the last probe of the store (the registry poll) succeeded, else 0.",
            registry=registry,
        )


class Metrics:
    """All metric objects of one daemon. Parts receive this object or their own part of it,
    never a global."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.daemon = DaemonMetrics(registry)
        self.serving = ServingMetrics(registry)
        self.log = LogMetrics(registry)
        self.adapters = AdapterMetrics(registry)
        self.monitors = MonitorMetrics(registry)
        self.policies = PolicyMetrics(registry)
        self.retraining = RetrainMetrics(registry)
        self.retention = RetentionMetrics(registry)
        self.privacy = PrivacyMetrics(registry)
        self.leader = LeaderMetrics(registry)


def new_metrics() -> Metrics:
    """A metrics object on a fresh registry (tests, CLI commands that export nothing)."""
    return Metrics(CollectorRegistry(auto_describe=True))
