"""Every Prometheus metric adaptd exports, defined in one place against a given registry.

Names start with ``adaptd_`` and follow Prometheus conventions (``_total``, ``_seconds``, base
units). Label sets are small and fixed: adapter versions, label names, policy names, signal names,
never a text, an id or a free-form value. Tests build a fresh ``CollectorRegistry`` and read values
with ``registry.get_sample_value(...)``.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from adaptd.control.leader_metrics import LeaderMetrics
from adaptd.policy.schema import ACTION_TYPES

# Latency buckets from 1 ms to 10 s: a micro-batched MiniLM answers in a few ms on CPU.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
# A check on a tiny model takes tens of ms; on MiniLM over a large window, tens of seconds.
CHECK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: label values known in advance (pre-created at zero, see the end of Metrics.__init__)
CHECK_RESULTS = ("ok", "error", "missed")
RETRAIN_OUTCOMES = ("promoted", "awaiting_approval", "rejected", "failed", "cancelled")


class Metrics:
    """All metric objects of one daemon. Parts receive this object, never a global."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.build_info = Info("adaptd_build", "Version of adaptd.", registry=registry)
        self.leader = LeaderMetrics(registry)

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
        self.predictions = Counter(
            "adaptd_predictions_total",
            "Predictions served, by adapter version and predicted label.",
            ["adapter", "label"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "adaptd_batch_size",
            "Texts per micro-batch forward pass.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.batch_duration = Histogram(
            "adaptd_batch_duration_seconds",
            "Tokenize + forward + postprocess time of one micro-batch.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "adaptd_queue_depth", "Texts waiting in the batcher queue.", registry=registry
        )
        self.queue_rejections = Counter(
            "adaptd_queue_rejections_total",
            "Predict requests answered 503 because the batcher queue was full.",
            registry=registry,
        )
        self.truncations = Counter(
            "adaptd_truncated_inputs_total",
            "Texts longer than model.max_length tokens, truncated before the forward pass.",
            registry=registry,
        )
        self.log_queued = Gauge(
            "adaptd_prediction_log_queued_rows",
            "Prediction rows buffered for the store.",
            registry=registry,
        )
        self.log_lag = Gauge(
            "adaptd_prediction_log_lag_seconds",
            "Age of the oldest prediction row not yet written to the store.",
            registry=registry,
        )
        self.log_written = Counter(
            "adaptd_prediction_log_written_total",
            "Prediction rows written to the store.",
            registry=registry,
        )
        self.log_dropped = Counter(
            "adaptd_prediction_log_dropped_total",
            "Prediction rows dropped, by reason "
            "(buffer_full, duplicate_id, invalid_row, shutdown).",
            ["reason"],
            registry=registry,
        )
        self.log_write_errors = Counter(
            "adaptd_prediction_log_write_errors_total",
            "Failed batch inserts into the store (retried with backoff).",
            registry=registry,
        )
        self.swaps = Counter(
            "adaptd_adapter_swaps_total",
            "Switches of the serving model between two micro-batches.",
            registry=registry,
        )
        self.swap_failures = Counter(
            "adaptd_adapter_swap_failures_total",
            "Adapter versions that could not be built or were refused as incompatible.",
            registry=registry,
        )
        self.swap_duration = Histogram(
            "adaptd_adapter_swap_duration_seconds",
            "From a version built and offered to its first micro-batch.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.model_load_duration = Histogram(
            "adaptd_model_load_duration_seconds",
            "Loading the base model (kind=base) or building an adapter version (kind=adapter).",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.active_adapter = Gauge(
            "adaptd_active_adapter_info",
            "1 for the adapter version serving predictions.",
            ["version"],
            registry=registry,
        )

        # --- config reload (owned by the service, which handles SIGHUP on every role) ---------
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
        self.log_queued_bytes = Gauge(
            "adaptd_prediction_log_queued_bytes",
            "Estimated memory of the prediction rows buffered for the store.",
            registry=registry,
        )
        self.store_up = Gauge(
            "adaptd_store_up",
            "1 when the last probe of the store (the registry poll) succeeded, else 0.",
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
        # One check = monitors, policy evaluation, storing: written by the control loop per pass.
        self.check_duration = Histogram(
            "adaptd_monitor_check_duration_seconds",
            "Wall time of one scheduled or manual check (monitors, policy evaluation, storing).",
            buckets=CHECK_BUCKETS,
            registry=registry,
        )
        self.checks = Counter(
            "adaptd_monitor_checks_total",
            "Checks by result: ok, error (the monitors raised), missed (the scheduler skipped it).",
            ["result"],
            registry=registry,
        )

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
        # The one way a policy's `alert` action reaches Prometheus (and through a shipped rule,
        # Alertmanager). `description` is operator text from the policy file: one series per
        # configured alert policy, replaced only by a reload, so it stays a small fixed set;
        # it is here so the alert carries it without a second metric to join.
        self.policy_alert_active = Gauge(
            "adaptd_policy_alert_active",
            "1 while an alert policy is tripped and its alert was raised, else 0.",
            ["policy", "severity", "description"],
            registry=registry,
        )
        self._alert_series: dict[str, tuple[str, str, str]] = {}
        self._alert_lock = threading.Lock()  # a check and a SIGHUP reload may export at once
        self.alert_webhook_deliveries = Counter(
            "adaptd_alert_webhook_deliveries_total",
            "Policy alerts posted to alerting.webhook_url, by result (delivered, or failed "
            "after every retry).",
            ["result"],
            registry=registry,
        )
        self.policy_action_failures = Counter(
            "adaptd_policy_action_failures_total",
            "Actions whose hook raised, by action.",
            ["action"],
            registry=registry,
        )
        self.policy_labels_awaited = Gauge(
            "adaptd_policy_labels_awaited",
            "Labelled examples a tripped retrain policy still waits for before it trains "
            "(0 when it does not wait).",
            ["policy"],
            registry=registry,
        )

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
        # Owned by the retrain job itself (not the scheduler that queues it): 1 exactly while a
        # run assembles data, trains or validates, whichever process started it.
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

        # Alert rules compute increase() over these; a series born at its first event has no
        # earlier sample, so that first burst would be invisible. Create the known ones at zero
        # (the log writer does the same for its drop reasons).
        for result in CHECK_RESULTS:
            self.checks.labels(result=result)
        for outcome in RETRAIN_OUTCOMES:
            self.retrain_runs.labels(outcome)
        for action in ACTION_TYPES:
            self.policy_action_failures.labels(action=action)
        for result in ("delivered", "failed"):
            self.alert_webhook_deliveries.labels(result=result)

    def set_policy_alert(
        self, policy: str, *, severity: str, description: str, active: bool
    ) -> None:
        """Export an alert policy's state; a severity or description changed by a reload
        replaces the policy's series instead of leaving the old one behind."""
        series = (policy, severity, description or f"policy {policy} tripped")
        with self._alert_lock:
            old = self._alert_series.get(policy, series)
            if old != series:
                self.policy_alert_active.remove(*old)
            self._alert_series[policy] = series
            self.policy_alert_active.labels(*series).set(1 if active else 0)

    def forget_policy_alert(self, policy: str) -> None:
        """A policy removed by a reload (or no longer an alert) stops reporting."""
        with self._alert_lock:
            series = self._alert_series.pop(policy, None)
            if series is not None:
                self.policy_alert_active.remove(*series)


def new_metrics() -> Metrics:
    """A metrics object on a fresh registry (tests, CLI commands that export nothing)."""
    return Metrics(CollectorRegistry(auto_describe=True))
