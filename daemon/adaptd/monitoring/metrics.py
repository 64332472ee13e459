"""The monitors' metrics: the latest value and status of every signal, and the checks that
produce them. Label values are signal names from :mod:`adaptd.monitoring.catalog`, a fixed set.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# A check on a tiny model takes tens of ms; on MiniLM over a large window, tens of seconds.
CHECK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
#: every check result, pre-created at zero so increase() sees the first error
CHECK_RESULTS = ("ok", "error", "missed")


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
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
        for result in CHECK_RESULTS:
            self.checks.labels(result=result)
