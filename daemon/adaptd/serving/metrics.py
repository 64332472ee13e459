"""The serving path's metrics: HTTP, the batcher, the prediction log and adapter swaps.

Each class is owned by the code that writes it (the HTTP app and the batcher, the log writer,
the swapper) and receives only its own object. Names follow Prometheus conventions and pass
``promtool check metrics``; label values are fixed sets (routes, codes, versions, labels).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Latency buckets from 1 ms to 10 s: a micro-batched MiniLM answers in a few ms on CPU.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServingMetrics:
    """Requests, micro-batches and the predictions they produce."""

    def __init__(self, registry: CollectorRegistry) -> None:
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


class LogMetrics:
    """The prediction log writer: what waits in memory, what reached the store, what did not."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queued = Gauge(
            "adaptd_prediction_log_queued_rows",
            "Prediction rows buffered for the store.",
            registry=registry,
        )
        self.queued_bytes = Gauge(
            "adaptd_prediction_log_queued_bytes",
            "Estimated memory of the prediction rows buffered for the store.",
            registry=registry,
        )
        self.lag = Gauge(
            "adaptd_prediction_log_lag_seconds",
            "Age of the oldest prediction row not yet written to the store.",
            registry=registry,
        )
        self.written = Counter(
            "adaptd_prediction_log_written_total",
            "Prediction rows written to the store.",
            registry=registry,
        )
        self.dropped = Counter(
            "adaptd_prediction_log_dropped_total",
            "Prediction rows dropped, by reason "
            "(buffer_full, store_full, duplicate_id, invalid_row, shutdown).",
            ["reason"],
            registry=registry,
        )
        self.write_errors = Counter(
            "adaptd_prediction_log_write_errors_total",
            "Failed batch inserts into the store (retried with backoff).",
            registry=registry,
        )


class AdapterMetrics:
    """Which adapter version serves, and how versions are built and swapped in."""

    def __init__(self, registry: CollectorRegistry) -> None:
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
        self.load_duration = Histogram(
            "adaptd_model_load_duration_seconds",
            "Loading the base model (kind=base) or building an adapter version (kind=adapter).",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.active = Gauge(
            "adaptd_active_adapter_info",
            "1 for the adapter version serving predictions.",
            ["version"],
            registry=registry,
        )
        # Written by the swapper (serving/swapper.py): this replica serves an earlier version
        # because the store's active one cannot be built here.
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
