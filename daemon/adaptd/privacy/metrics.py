"""Prometheus metrics of the privacy layer (attached to :class:`adaptd.metrics.Metrics`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from adaptd.privacy.patterns import KINDS

#: why a text was stored as nothing but its keyed hash
UNREDACTABLE_REASONS = ("error", "too_long")


class PrivacyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.redactions = Counter(
            "adaptd_privacy_redactions_total",
            "Personal data replaced by a typed placeholder before a text was stored, by kind.",
            ["kind"],
            registry=registry,
        )
        self.unredactable = Counter(
            "adaptd_privacy_unredactable_texts_total",
            "Texts that could not be redacted and were stored as nothing but their keyed hash.",
            ["reason"],
            registry=registry,
        )
        self.redaction_seconds = Counter(
            "adaptd_privacy_redaction_seconds_total",
            "Time spent redacting texts (the serving cost of privacy.text: redacted).",
            registry=registry,
        )
        for kind in KINDS:
            self.redactions.labels(kind)
        for reason in UNREDACTABLE_REASONS:
            self.unredactable.labels(reason)
