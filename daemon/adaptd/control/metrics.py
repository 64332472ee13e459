"""Metrics of the control role's election (attached to :class:`adaptd.metrics.Metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class LeaderMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.leader = Gauge(
            "adaptd_control_leader",
            "1 while this instance holds the leader lock and runs the control loop (monitors, "
            "policies, retraining, probation); 0 on a standby.",
            registry=registry,
        )
        self.terms = Counter(
            "adaptd_control_leader_terms_total",
            "Times this instance became the control leader.",
            registry=registry,
        )
        self.lost = Counter(
            "adaptd_control_leader_lost_total",
            "Times this instance lost the leader lock while it led (its control loop stopped).",
            registry=registry,
        )
