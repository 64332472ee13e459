"""Operators' view: a real Prometheus scrapes a real daemon; every metric the Grafana dashboard
and the alert rules use is exported; the rule file loads."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from adaptd.cli.status_cmd import render
from adaptd.service import RunState, Service
from tests.e2e import tiny
from tests.prom import Alertmanager, alertmanager_server, prometheus_server
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "adaptd.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
NAME = re.compile(r"\badaptd_[a-z_]+\b")


def used_metrics() -> set[str]:
    exprs = [
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel.get("targets", [])
    ]
    exprs.append(ALERTS.read_text())
    return {m for expr in exprs for m in NAME.findall(expr)}


def exported_families(text: str) -> set[str]:
    """Family names from # HELP lines, plus the sample suffixes each type adds."""
    families: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            families.add(name)
            if kind == "histogram":
                families |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            if kind == "counter":
                families.add(f"{name}_total")
    return families


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Service]:
    import torch

    torch.set_num_threads(1)
    base = build_base(tmp_path / "base")
    settings = settings_for(tmp_path / "state", base, monitors={"min_samples": 5})
    engine = store_for(settings)
    register(engine, settings, build_adapter(base, tmp_path / "adapter", seed=1))
    engine.dispose()
    service = Service(settings=settings)
    service.startup()
    yield service
    if service.state not in (RunState.STOPPED, RunState.CREATED):
        service.handle_term()
        service.shutdown()


def test_dashboard_and_alerts_use_only_exported_metrics(daemon: Service) -> None:
    assert daemon.control is not None
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.http_port}", timeout=30) as client:
        for i in range(3):
            client.post("/v1/predict", json={"inputs": [f"good {i}", f"bad {i}"]})
        daemon.control.loop.run_check_once(datetime.now(UTC))
        text = client.get("/metrics").text
    missing = sorted(used_metrics() - exported_families(text))
    assert not missing, f"dashboard/alerts use metrics the daemon does not export: {missing}"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_alert_rules_and_metrics_pass_promtool(daemon: Service) -> None:
    rules = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True)
    assert rules.returncode == 0, rules.stderr
    text = httpx.get(f"http://127.0.0.1:{daemon.http_port}/metrics", timeout=30).text
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=text.encode(), capture_output=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_a_real_prometheus_scrapes_the_daemon(daemon: Service) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.http_port}", timeout=30) as client:
        client.post("/v1/predict", json={"inputs": ["good day", "bad day"]})
    try:
        server = prometheus_server(f"127.0.0.1:{daemon.http_port}", rules=ALERTS)
        prometheus = server.__enter__()
    except RuntimeError as e:
        pytest.skip(f"Prometheus unavailable: {e}")
    try:
        prometheus.wait_until_scraped()
        result = prometheus.query("sum(adaptd_predictions_total)")
        assert result and float(result[0]["value"][1]) >= 2
        active = prometheus.query("adaptd_active_adapter_info == 1")
        assert len(active) == 1
    finally:
        server.__exit__(None, None, None)


def test_status_command_reads_the_running_daemon(daemon: Service, tmp_path: Path) -> None:
    import os
    import sys

    url = f"http://127.0.0.1:{daemon.http_port}"
    env = {k: v for k, v in os.environ.items() if k != "ADAPTD_CONFIG"}
    shown = subprocess.run(
        [sys.executable, "-m", "adaptd", "status", "--json", "--url", url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    assert "control" in document and "adapter" in document
    human = subprocess.run(
        [sys.executable, "-m", "adaptd", "status", "--url", url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert human.returncode == 0, human.stderr
    lines = human.stdout.splitlines()
    assert lines[0].startswith("adaptd ") and ", ready (up " in lines[0]
    serving = document["adapter"]["serving"][:12]
    assert any(line.startswith(f"serving      {serving} since ") for line in lines), lines
    assert any(line.startswith("last check   ") for line in lines), lines
    gone = subprocess.run(
        [sys.executable, "-m", "adaptd", "status", "--url", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert gone.returncode == 1
    assert gone.stderr.strip().startswith("adaptd: error: no daemon answering at")


# --------------------------------------------------------------------------- the whole loop

ALERTING_POLICIES = """\
policies:
  - name: accuracy-fell
    trip: {signal: performance.accuracy, lt: 0.8}
    min_samples: 50
    for: 1
    cooldown: 0s
    action: {type: retrain}
  - name: accuracy-watch
    description: Labelled accuracy below 95% on two checks.
    trip: {signal: performance.accuracy, lt: 0.95}
    min_samples: 50
    for: 2
    cooldown: 0s
    action: {type: alert, severity: critical}
"""
SELECTOR = re.compile(r"\b(adaptd_[a-z_]+)(\{[^}]*\})?")
#: selectors a healthy loop cannot feed, each with why; their rules have promtool cases
UNFED = {
    'adaptd_http_requests_total{code=~"5.."}': "a healthy run answers no 5xx",
}


def panel_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in json.loads(DASHBOARD.read_text())["panels"]
        for target in panel.get("targets", [])
    ]


def selectors() -> set[str]:
    exprs = panel_exprs()
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    exprs += [rule["expr"] for group in groups for rule in group["rules"]]
    return {name + (labels or "") for expr in exprs for name, labels in SELECTOR.findall(expr)}


class Webhook:
    """Where Alertmanager delivers: records each notification's alerts."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received = self.received = []  # type: list[dict[str, Any]]

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.extend(json.loads(body)["alerts"])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def alerting() -> Iterator[tuple[Webhook, Alertmanager]]:
    """A real Alertmanager that hands every notification to a webhook the test reads."""
    webhook = Webhook()
    try:
        server = alertmanager_server(webhook.url)
        try:
            alertmanager = server.__enter__()
        except RuntimeError as e:
            pytest.skip(f"Alertmanager unavailable: {e}")
        try:
            yield webhook, alertmanager
        finally:
            server.__exit__(None, None, None)
    finally:
        webhook.close()


@pytest.fixture
def looping_daemon(
    tiny_base: Path, tmp_path: Path, alerting: tuple[Webhook, Alertmanager]
) -> Iterator[Service]:
    alertmanager = alerting[1]
    with tiny.running_daemon(
        tiny_base,
        tmp_path,
        ALERTING_POLICIES,
        monitors={
            "min_samples": 50,
            "current_window": 300,
            "reference_window": 200,
            "attributes": ["gender"],
        },
        retraining={
            **tiny.RETRAINING,
            "probation": {"min_samples": 30, "max_accuracy_drop": 0.02},
        },
        # The daemon's own delivery path, straight into Alertmanager's API.
        alerting={"webhook_url": f"{alertmanager.url}/api/v2/alerts", "backoff_s": 0.2},
    ) as service:
        yield service


def wait_until(predicate: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus is not installed")
def test_every_panel_and_alert_is_fed_and_a_policy_alert_reaches_alertmanager(
    looping_daemon: Service, alerting: tuple[Webhook, Alertmanager]
) -> None:
    """Traffic, drift, a trip, a retrain, a promotion and a probation rollback, with a real
    Prometheus scraping and evaluating the shipped rules and a real Alertmanager behind it."""
    from tests.e2e.test_loop import loop_then_rollback

    daemon = looping_daemon
    assert daemon.control is not None and daemon.metrics is not None
    webhook, alertmanager = alerting
    with (
        prometheus_server(
            f"127.0.0.1:{daemon.http_port}", rules=ALERTS, alertmanager=alertmanager.address
        ) as prometheus,
        httpx.Client(base_url=f"http://127.0.0.1:{daemon.http_port}", timeout=60) as client,
    ):
        prometheus.wait_until_scraped()
        time.sleep(2)  # counters are scraped at their starting value before the loop moves them
        loop_then_rollback(daemon, client)
        # A 4xx for the errors panel: feedback for an id nobody predicted.
        missing = client.post(
            "/v1/feedback", json={"feedback": [{"id": "nope", "label": "positive"}]}
        )
        assert missing.status_code == 404
        (watch,) = [
            p for p in daemon.control.loop.status()["policies"] if p["name"] == "accuracy-watch"
        ]
        assert watch["phase"] == "tripped", watch

        # Two paths reach Alertmanager's receiver: the shipped rule evaluated by Prometheus
        # (its alerts carry the scrape job) and the daemon's webhook (they name the host).
        def delivered(via_prometheus: bool) -> list[dict[str, Any]]:
            return [
                a
                for a in webhook.received
                if a["labels"]["alertname"] == "AdaptdPolicyAlert"
                and ("job" in a["labels"]) == via_prometheus
            ]

        wait_until(lambda: delivered(True) and delivered(False), "both alerts to be delivered")
        for alert in (delivered(True)[0], delivered(False)[0]):
            assert alert["status"] == "firing"
            assert alert["labels"]["policy"] == "accuracy-watch"
            assert alert["labels"]["severity"] == "critical"
            assert alert["annotations"]["summary"] == (
                "policy accuracy-watch: Labelled accuracy below 95% on two checks."
            )
        assert delivered(False)[0]["labels"]["instance"] == socket.gethostname()
        assert (
            daemon.metrics.registry.get_sample_value(
                "adaptd_alert_webhook_deliveries_total", {"result": "delivered"}
            )
            == 1
        )
        assert (
            len(
                [
                    a
                    for a in alertmanager.alerts()
                    if a["labels"]["alertname"] == "AdaptdPolicyAlert"
                ]
            )
            == 2
        )
        wait_until(
            lambda: prometheus.query('ALERTS{alertname="AdaptdProbationRollback"}'),
            "the probation rollback alert",
        )
        assert not prometheus.query('ALERTS{alertname="AdaptdConfigReloadFailed"}')

        # `adaptd status` answers the first questions from the same run.
        shown = render(client.get("/v1/status").json())
        (serving,) = [line for line in shown if line.startswith("serving ")]
        assert " since " in serving and "probation" in serving, shown
        assert any(line.startswith("last check") and "drifted: " in line for line in shown)
        assert any("accuracy-watch" in line and "tripped" in line for line in shown), shown

        time.sleep(2)  # one more scrape after the last check
        unfed = sorted(
            s for s in selectors() - set(UNFED) if not prometheus.query(f"count_over_time({s}[1h])")
        )
        blank = sorted(e for e in panel_exprs() if not prometheus.query(e))
        exported = client.get("/metrics").text
    assert unfed == [], f"used by the dashboard or the rules but never written: {unfed}"
    assert blank == [], f"dashboard queries without data after the loop: {blank}"
    if shutil.which("promtool"):  # with every series present, policy alerts included
        lint = subprocess.run(
            ["promtool", "check", "metrics"], input=exported.encode(), capture_output=True
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
