"""Retention's Prometheus metrics, attached to :class:`adaptd.metrics.Metrics` as ``retention``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from adaptd.retention.settings import KINDS


class RetentionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.deleted = Counter(
            "adaptd_retention_deleted_rows_total",
            "Rows (for runs and rejected_adapters: directories) deleted by retention passes, "
            "by table.",
            ["table"],
            registry=registry,
        )
        self.max_batch = Gauge(
            "adaptd_retention_max_batch_seconds",
            "Longest delete transaction (write lock held) of the last retention pass.",
            registry=registry,
        )
        # Pre-created at zero: an alert on increase() must see the first pass's deletions.
        for kind in KINDS:
            self.deleted.labels(table=kind)
