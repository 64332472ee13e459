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
        self.policy_state = Gauge(
            "adaptd_policy_state",
            "1 for the phase each policy is in (idle, pending or tripped), 0 for the others.",
            ["policy", "state"],
            registry=registry,
        )
        self.policy_pending_checks = Gauge(
            "adaptd_policy_pending_checks",
            "Recent checks that satisfied a policy's trip condition while it was not tripped.",
            ["policy"],
            registry=registry,
        )
        self.policy_trips = Counter(
            "adaptd_policy_trips_total",
            "Policy trips, by policy and the action it takes.",
            ["policy", "action"],
            registry=registry,
        )
        self.policy_clears = Counter(
            "adaptd_policy_clears_total", "Policy clears.", ["policy"], registry=registry
        )
        self.policy_actions = Counter(
            "adaptd_policy_actions_total",
            "Actions policies fired (before single-flight coalescing), by policy and action.",
            ["policy", "action"],
            registry=registry,
        )
        self.policy_suppressions = Counter(
            "adaptd_policy_suppressions_total",
            "Suppressed policy steps, by reason: insufficient_data, cooldown, budget, coalesced.",
            ["policy", "reason"],
            registry=registry,
        )
        self.policy_action_failures = Counter(
            "adaptd_policy_action_failures_total",
            "Actions whose hook raised, by action.",
            ["action"],
            registry=registry,
        )
        self.policy_reload_errors = Counter(
            "adaptd_policy_reload_errors_total",
            "Reloads refused because a policy file was invalid (the previous policies stay).",
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
        self.checks = Counter(
            "adaptd_checks_total",
            "Monitor checks run by the scheduler, by result (ok or error).",
            ["result"],
            registry=registry,
        )
        self.check_duration = Histogram(
            "adaptd_check_duration_seconds",
            "Duration of one check: monitors, policy evaluation, storing.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.retrain_running = Gauge(
            "adaptd_retrain_job_running",
            "1 while the single-flight retrain job runs.",
            registry=registry,
        )

        # --- retraining ----------------------------------------------------------------------


def new_metrics() -> Metrics:
    """A metrics object on a fresh registry (tests, CLI commands that export nothing)."""
    return Metrics(CollectorRegistry(auto_describe=True))
