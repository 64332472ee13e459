"""The policy engine's metrics: each policy's phase, trips, actions and suppressions, and the
alerts its `alert` actions raise (as a metric a shipped rule turns into a Prometheus alert, and
as webhook deliveries)."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge

from adaptd.policy.schema import ACTION_TYPES


class PolicyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.state = Gauge(
            "adaptd_policy_state",
            "1 for the phase each policy is in (idle, pending, tripped or refining), 0 for the "
            "others.",
            ["policy", "state"],
            registry=registry,
        )
        self.pending_checks = Gauge(
            "adaptd_policy_pending_checks",
            "Recent checks that satisfied a policy's trip condition while it was not tripped.",
            ["policy"],
            registry=registry,
        )
        self.trips = Counter(
            "adaptd_policy_trips_total",
            "Policy trips, by policy and the action it takes.",
            ["policy", "action"],
            registry=registry,
        )
        self.clears = Counter(
            "adaptd_policy_clears_total", "Policy clears.", ["policy"], registry=registry
        )
        self.actions = Counter(
            "adaptd_policy_actions_total",
            "Actions policies fired (before single-flight coalescing), by policy and action.",
            ["policy", "action"],
            registry=registry,
        )
        self.suppressions = Counter(
            "adaptd_policy_suppressions_total",
            "Suppressed policy steps, by reason: insufficient_data, cooldown, budget, coalesced.",
            ["policy", "reason"],
            registry=registry,
        )
        self.action_failures = Counter(
            "adaptd_policy_action_failures_total",
            "Actions whose hook raised, by action.",
            ["action"],
            registry=registry,
        )
        self.labels_awaited = Gauge(
            "adaptd_policy_labels_awaited",
            "Labelled examples a tripped retrain policy still waits for before it trains "
            "(0 when it does not wait).",
            ["policy"],
            registry=registry,
        )
        # The one way a policy's `alert` action reaches Prometheus (and through a shipped rule,
        # Alertmanager). `description` is operator text from the policy file: one series per
        # configured alert policy, replaced only by a reload, so it stays a small fixed set;
        # it is here so the alert carries it without a second metric to join.
        self.alert_active = Gauge(
            "adaptd_policy_alert_active",
            "1 while an alert policy is tripped and its alert was raised, else 0.",
            ["policy", "severity", "description"],
            registry=registry,
        )
        self.webhook_deliveries = Counter(
            "adaptd_alert_webhook_deliveries_total",
            "Policy alerts posted to alerting.webhook_url, by result (delivered, or failed "
            "after every retry).",
            ["result"],
            registry=registry,
        )
        self._alert_series: dict[str, tuple[str, str, str]] = {}
        self._alert_lock = threading.Lock()  # a check and a SIGHUP reload may export at once
        # Rules compute increase() over these; a series born at its first event would hide it.
        for action in ACTION_TYPES:
            self.action_failures.labels(action=action)
        for result in ("delivered", "failed"):
            self.webhook_deliveries.labels(result=result)

    def set_alert(self, policy: str, *, severity: str, description: str, active: bool) -> None:
        """Export an alert policy's state; a severity or description changed by a reload
        replaces the policy's series instead of leaving the old one behind."""
        series = (policy, severity, description or f"policy {policy} tripped")
        with self._alert_lock:
            old = self._alert_series.get(policy, series)
            if old != series:
                self.alert_active.remove(*old)
            self._alert_series[policy] = series
            self.alert_active.labels(*series).set(1 if active else 0)

    def forget_alert(self, policy: str) -> None:
        """A policy removed by a reload (or no longer an alert) stops reporting."""
        with self._alert_lock:
            series = self._alert_series.pop(policy, None)
            if series is not None:
                self.alert_active.remove(*series)
