"""The shipped alert rules: each has a firing case in alerts.test.yml, and promtool runs them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
TESTS = PROMETHEUS / "alerts.test.yml"


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_every_rule_has_a_firing_case_and_names_a_severity() -> None:
    cases = [
        case
        for test in yaml.safe_load(TESTS.read_text())["tests"]
        for case in test["alert_rule_test"]
    ]
    firing = {case["alertname"] for case in cases if case.get("exp_alerts")}
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "duplicate alert names"
    assert sorted(set(names) - firing) == [], "rules without a firing case in alerts.test.yml"
    assert sorted(firing - set(names)) == [], "cases for rules that do not exist"
    for rule in alert_rules():
        # AdaptdPolicyAlert takes the severity the policy file gives, from the series' label.
        if rule["alert"] != "AdaptdPolicyAlert":
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) not installed")
def test_promtool_passes_the_rule_unit_tests() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", str(TESTS)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Prometheus) not installed")
def test_the_shipped_prometheus_config_is_valid() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool (Alertmanager) not installed")
def test_the_shipped_alertmanager_config_is_valid() -> None:
    result = subprocess.run(
        ["amtool", "check-config", str(PROMETHEUS / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
