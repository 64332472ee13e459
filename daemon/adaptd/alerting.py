"""Optional delivery of a policy's ``alert`` action to a webhook, in Alertmanager's format.

The Prometheus path (``adaptd_policy_alert_active`` and the shipped ``AdaptdPolicyAlert`` rule)
needs nothing from here. This is for deployments without Prometheus rules, or that want the
alert at once: each alert action POSTs a JSON list of one alert in Alertmanager's API v2 format
(``labels``, ``annotations``, ``startsAt``, ``generatorURL``), so ``webhook_url`` may be an
Alertmanager's ``/api/v2/alerts`` itself or any receiver that takes that shape. No ``endsAt`` is
sent: the action fires once per trip, so Alertmanager resolves it after its ``resolve_timeout``.

Delivery runs in its own thread (a slow receiver never delays a check), each attempt bounded by
``timeout_s``, retried ``retries`` times with doubling backoff; the outcome is counted in
``adaptd_alert_webhook_deliveries_total{result}``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import Field

from adaptd.policy.metrics import PolicyMetrics
from adaptd.settings_base import Section

logger = logging.getLogger(__name__)

#: the alert name shared with the Prometheus rule, so routes written for one match the other
ALERT_NAME = "AdaptdPolicyAlert"


class AlertingSettings(Section):
    """Optional webhook for policy alerts (Prometheus gets them through a metric anyway)."""

    webhook_url: str | None = Field(
        default=None,
        description="POST each policy alert here as an Alertmanager API v2 alert list, e.g. "
        "http://127.0.0.1:9093/api/v2/alerts. Unset: alerts reach Prometheus only "
        "(adaptd_policy_alert_active).",
        pattern=r"^https?://",
    )
    timeout_s: float = Field(default=5.0, gt=0, description="Limit of one delivery attempt.")
    retries: int = Field(default=3, ge=0, le=10, description="Attempts after the first one fails.")
    backoff_s: float = Field(
        default=1.0, ge=0, description="Wait before the first retry; doubles at each retry."
    )


def alert_payload(
    *, policy: str, severity: str, description: str, message: str, now: datetime, instance: str
) -> list[dict[str, Any]]:
    """One firing alert in Alertmanager's API v2 shape (a list, as its endpoint takes)."""
    summary = f"policy {policy}: {description}" if description else f"policy {policy} tripped"
    return [
        {
            "labels": {
                "alertname": ALERT_NAME,
                "policy": policy,
                "severity": severity,
                "instance": instance,
            },
            "annotations": {"summary": summary, "description": message},
            "startsAt": now.isoformat(),
            "generatorURL": f"http://{instance}/v1/status",
        }
    ]


def _post(url: str, body: bytes, timeout_s: float) -> None:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


class Webhook:
    """Posts alert payloads to ``settings.webhook_url`` with retries, off the caller's thread."""

    def __init__(
        self,
        settings: AlertingSettings,
        metrics: PolicyMetrics,
        *,
        post: Callable[[str, bytes, float], None] = _post,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if settings.webhook_url is None:
            raise ValueError("alerting.webhook_url is not set")
        self.url = settings.webhook_url
        self._settings = settings
        self._metrics = metrics
        self._post = post
        self._sleep = sleep

    def submit(self, payload: list[dict[str, Any]]) -> threading.Thread:
        thread = threading.Thread(
            target=self.deliver, args=(payload,), name="adaptd-alert-webhook", daemon=True
        )
        thread.start()
        return thread

    def deliver(self, payload: list[dict[str, Any]]) -> bool:
        """Try once plus ``retries`` times; True when the receiver answered 2xx."""
        body = json.dumps(payload).encode()
        wait = self._settings.backoff_s
        attempts = self._settings.retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self._post(self.url, body, self._settings.timeout_s)
            except (OSError, urllib.error.URLError, ValueError) as e:
                # HTTPError (a 4xx/5xx answer) and timeouts are OSErrors too.
                logger.warning(
                    "alert webhook %s: attempt %d of %d failed: %s", self.url, attempt, attempts, e
                )
                if attempt < attempts:
                    self._sleep(wait)
                    wait *= 2
                continue
            self._metrics.webhook_deliveries.labels(result="delivered").inc()
            return True
        logger.error("alert webhook %s: giving up after %d attempts", self.url, attempts)
        self._metrics.webhook_deliveries.labels(result="failed").inc()
        return False


def instance_name() -> str:
    """How the daemon names itself in webhook alerts."""
    return socket.gethostname()
