"""The retrain job's metrics, written by the job itself whichever process started it, and
probation's rollbacks."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)
#: every outcome, pre-created at zero so a rule on increase() sees the first rejection
RETRAIN_OUTCOMES = ("promoted", "awaiting_approval", "rejected", "failed", "cancelled")


class RetrainMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "adaptd_retrain_runs_total",
            "Retrain runs by outcome (promoted, awaiting_approval, rejected, failed, cancelled).",
            ["outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "adaptd_retrain_duration_seconds",
            "Wall time of a retrain run, from start to verdict.",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.samples = Gauge(
            "adaptd_retrain_samples",
            "Examples in the last retrain by kind (new, replay, holdout).",
            ["kind"],
            registry=registry,
        )
        self.progress = Gauge(
            "adaptd_retrain_progress_ratio",
            "Share of training steps done in the running retrain (0 when none runs).",
            registry=registry,
        )
        # 1 exactly while a run assembles data, trains or validates.
        self.running = Gauge("adaptd_retrain_running", "1 while a retrain runs.", registry=registry)
        self.throughput = Gauge(
            "adaptd_retrain_samples_per_second",
            "Training throughput of the running or last retrain.",
            registry=registry,
        )
        self.rollbacks = Counter(
            "adaptd_probation_rollbacks_total",
            "Promoted adapters rolled back during probation.",
            registry=registry,
        )
        for outcome in RETRAIN_OUTCOMES:
            self.runs.labels(outcome)
