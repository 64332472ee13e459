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

        # --- policies ------------------------------------------------------------------------

        # --- retraining ----------------------------------------------------------------------
        self.retrain_runs = Counter(
            "adaptd_retrain_runs_total",
            "Retrain runs by outcome (promoted, awaiting_approval, rejected, failed, cancelled).",
            ["outcome"],
            registry=registry,
        )
        self.retrain_duration = Histogram(
            "adaptd_retrain_duration_seconds",
            "Wall time of a retrain run, from start to verdict.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.retrain_samples = Gauge(
            "adaptd_retrain_samples",
            "Examples in the last retrain by kind (new, replay, holdout).",
            ["kind"],
            registry=registry,
        )
        self.retrain_progress = Gauge(
            "adaptd_retrain_progress_ratio",
            "Share of training steps done in the running retrain (0 when none runs).",
            registry=registry,
        )
        self.retrain_running = Gauge(
            "adaptd_retrain_running", "1 while a retrain runs.", registry=registry
        )
        self.retrain_throughput = Gauge(
            "adaptd_retrain_samples_per_second",
            "Training throughput of the running or last retrain.",
            registry=registry,
        )
        self.rollbacks = Counter(
            "adaptd_probation_rollbacks_total",
            "Promoted adapters rolled back during probation.",
            registry=registry,
        )


def new_metrics() -> Metrics:
    """A metrics object on a fresh registry (tests, CLI commands that export nothing)."""
    return Metrics(CollectorRegistry(auto_describe=True))
