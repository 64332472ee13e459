"""Every Prometheus metric adaptd exports, defined in one place against a given registry.

Names start with ``adaptd_`` and follow Prometheus conventions (``_total``, ``_seconds``, base
units). Label sets are small and fixed: adapter versions, label names, policy names, signal names,
never a text, an id or a free-form value. Tests build a fresh ``CollectorRegistry`` and read values
with ``registry.get_sample_value(...)``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# Latency buckets from 1 ms to 10 s: a micro-batched MiniLM answers in a few ms on CPU.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)


class Metrics:
    """All metric objects of one daemon. Parts receive this object, never a global."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.build_info = Info("adaptd_build", "Version of adaptd.", registry=registry)

        # --- serving -------------------------------------------------------------------------
        self.requests = Counter(
            "adaptd_http_requests_total",
            "HTTP requests by route and status code.",
            ["route", "code"],
            registry=registry,
        )
        self.request_latency = Histogram(
            "adaptd_http_request_duration_seconds",
            "HTTP request latency by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

        # --- store ---------------------------------------------------------------------------

        # --- monitoring ----------------------------------------------------------------------
        # Label values are signal names from adaptd.monitoring.catalog: a fixed, small set.
        self.signal_value = Gauge(
            "adaptd_signal_value",
            "Latest value of a monitoring signal (absent while it has no verdict).",
            ["signal"],
            registry=registry,
        )
        self.signal_status = Gauge(
            "adaptd_signal_status",
            "1 for the latest status of a monitoring signal, 0 for the other statuses.",
            ["signal", "status"],
            registry=registry,
        )
        self.signal_samples = Gauge(
            "adaptd_signal_samples",
            "Samples behind the latest value of a monitoring signal, by window.",
            ["signal", "window"],
            registry=registry,
        )
        self.monitor_check_duration = Histogram(
            "adaptd_monitor_check_duration_seconds",
            "Wall time of one monitoring pass.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=registry,
        )
        self.monitor_checks = Counter(
            "adaptd_monitor_checks_total",
            "Monitoring passes by outcome (ok, drift, error).",
            ["outcome"],
            registry=registry,
        )

        # --- policies ------------------------------------------------------------------------

        # --- retraining ----------------------------------------------------------------------


def new_metrics() -> Metrics:
    """A metrics object on a fresh registry (tests, CLI commands that export nothing)."""
    return Metrics(CollectorRegistry(auto_describe=True))
