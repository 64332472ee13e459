"""The policy and control metrics, with series present, pass `promtool check metrics`."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from adaptd.control.loop import ControlLoop, Hooks
from adaptd.control.settings import SchedulerSettings
from adaptd.metrics import Metrics
from adaptd.policy.schema import Policy
from tests.unit.policy.helpers import CATALOG, T0, sig


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) not installed")
def test_promtool_accepts_the_policy_metrics(sqlite_engine):
    registry = CollectorRegistry()
    p = Policy.model_validate(
        {"name": "p", "trip": {"signal": "drift.embedding.auc", "gt": 0.7}, "action": "alert"},
        context={"known": CATALOG},
    )
    loop = ControlLoop(
        engine=sqlite_engine,
        metrics=Metrics(registry),
        settings=SchedulerSettings(),
        policies=[p],
        hooks=Hooks(
            check=lambda now: [sig("drift.embedding.auc", 0.9, ts=now)],
            retrain=lambda d: None,
            rollback=lambda d: None,
            alert=lambda d: None,
        ),
    )
    loop.run_check_once(T0)
    loop.record_reload_failure(["bad"])
    text = generate_latest(registry)
    assert b'adaptd_policy_trips_total{action="alert",policy="p"} 1.0' in text
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
