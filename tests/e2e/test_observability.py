"""Operators' view: a real Prometheus scrapes a real daemon; every metric the Grafana dashboard
and the alert rules use is exported; the rule file loads."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from adaptd.service import RunState, Service
from tests.prom import prometheus_server
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
