"""Metrics of the swapper (:mod:`adaptd.serving.swapper`) beyond the swap counters in
:mod:`adaptd.metrics`: whether this replica serves a fallback instead of the store's active
version."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class SwapperMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fallback = Gauge(
            "adaptd_adapter_fallback",
            "1 while this daemon serves an earlier version because the active one cannot be "
            "built here, else 0.",
            registry=registry,
        )
        self.fallbacks = Counter(
            "adaptd_adapter_fallbacks_total",
            "Times this daemon fell back to an earlier version because the active one could "
            "not be built.",
            registry=registry,
        )
        self.fallback.set(0)
