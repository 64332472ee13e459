"""The alert webhook: Alertmanager's payload shape, retries with backoff, a timeout per attempt,
delivery counted; against real local HTTP servers where it matters."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import ValidationError

from adaptd.alerting import ALERT_NAME, AlertingSettings, Webhook, alert_payload
from adaptd.metrics import new_metrics

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def payload() -> list[dict[str, Any]]:
    return alert_payload(
        policy="drift-alert",
        severity="critical",
        description="Input drift",
        message="drift-alert: drift.embedding.auc 0.91 > 0.7",
        now=NOW,
        instance="host-1",
    )


class Receiver:
    """A real HTTP endpoint: answers each POST with the next status (or hangs on 'hang')."""

    def __init__(self, answers: list[Any]) -> None:
        self.bodies: list[Any] = []
        self.release = threading.Event()
        bodies, release = self.bodies, self.release

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                answer = answers.pop(0) if answers else 200
                if answer == "hang":
                    release.wait(10)
                    return
                self.send_response(answer)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v2/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(list(request.param))
    yield server
    server.close()


def sample(metrics: Any, result: str) -> float | None:
    value = metrics.registry.get_sample_value(
        "adaptd_alert_webhook_deliveries_total", {"result": result}
    )
    return None if value is None else float(value)


def test_the_payload_is_one_alert_in_alertmanagers_api_v2_shape() -> None:
    (alert,) = payload()
    assert alert["labels"] == {
        "alertname": ALERT_NAME,
        "policy": "drift-alert",
        "severity": "critical",
        "instance": "host-1",
    }
    assert alert["annotations"] == {
        "summary": "policy drift-alert: Input drift",
        "description": "drift-alert: drift.embedding.auc 0.91 > 0.7",
    }
    assert alert["startsAt"] == "2026-01-01T12:00:00+00:00"
    assert "endsAt" not in alert  # resolved by Alertmanager's resolve_timeout


@pytest.mark.parametrize("receiver", [[503, 500, 200]], indirect=True)
def test_failed_attempts_are_retried_with_doubling_backoff(receiver: Receiver) -> None:
    metrics, waits = new_metrics(), []
    settings = AlertingSettings(webhook_url=receiver.url, retries=3, backoff_s=0.5)
    assert Webhook(settings, metrics.policies, sleep=waits.append).deliver(payload()) is True
    assert waits == [0.5, 1.0]
    assert receiver.bodies == [payload()] * 3
    assert (sample(metrics, "delivered"), sample(metrics, "failed")) == (1, 0)


@pytest.mark.parametrize("receiver", [["hang", "hang"]], indirect=True)
def test_a_receiver_that_never_answers_costs_one_timeout_per_attempt(receiver: Receiver) -> None:
    metrics = new_metrics()
    settings = AlertingSettings(webhook_url=receiver.url, timeout_s=0.3, retries=1, backoff_s=0)
    started = time.monotonic()
    assert Webhook(settings, metrics.policies).deliver(payload()) is False
    assert time.monotonic() - started < 3.0
    assert len(receiver.bodies) == 2
    assert (sample(metrics, "delivered"), sample(metrics, "failed")) == (0, 1)


def test_delivery_runs_off_the_callers_thread() -> None:
    calls: list[str] = []
    gate = threading.Event()

    def post(url: str, body: bytes, timeout_s: float) -> None:
        gate.wait(5)
        calls.append(url)

    settings = AlertingSettings(webhook_url="http://127.0.0.1:9/hook")
    thread = Webhook(settings, new_metrics().policies, post=post).submit(payload())
    assert calls == []  # submit returned while the receiver was still busy
    gate.set()
    thread.join(5)
    assert calls == ["http://127.0.0.1:9/hook"]


def test_a_webhook_url_must_be_http() -> None:
    with pytest.raises(ValidationError, match="webhook_url"):
        AlertingSettings(webhook_url="alertmanager:9093")
