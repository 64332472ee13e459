"""Every shipped policy file validates, and the schema an editor gets is complete."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from adaptd.policy.loading import load_policies
from adaptd.policy.schema import RetrainAction, json_schema
from tests.unit.policy.helpers import CATALOG, POLICIES_DIR

SHIPPED = sorted(POLICIES_DIR.glob("*.yaml"))
DEMO = POLICIES_DIR.parent / "daemon" / "adaptd" / "demo" / "policy.yaml"


def test_the_four_examples_are_shipped():
    assert {p.name for p in SHIPPED} == {
        "default.yaml",
        "conservative.yaml",
        "fairness-first.yaml",
        "alert-only.yaml",
    }


@pytest.mark.parametrize("path", [*SHIPPED, DEMO], ids=lambda p: p.parent.name + "/" + p.name)
def test_shipped_file_validates_against_the_test_catalog(path: Path):
    policies, errors = load_policies([path], CATALOG)
    assert [str(e) for e in errors] == []
    assert policies


@pytest.mark.skipif(
    importlib.util.find_spec("adaptd.monitoring.catalog") is None,
    reason="the monitors' signal catalog (issue 4) is not merged on this branch yet",
)
@pytest.mark.parametrize("path", [*SHIPPED, DEMO], ids=lambda p: p.parent.name + "/" + p.name)
def test_shipped_file_validates_against_the_real_catalog(path: Path):
    from adaptd.monitoring.catalog import known_signals  # type: ignore[import-not-found]

    # fairness-first.yaml watches the `gender` attribute of the demo's tweets.
    known = known_signals(["gender"], ["negative", "positive"])
    policies, errors = load_policies([path], known)
    assert [str(e) for e in errors] == []


def test_alert_only_never_retrains_and_conservative_retrains_rarely():
    alert_only, _ = load_policies([POLICIES_DIR / "alert-only.yaml"], CATALOG)
    assert {p.action.type for p in alert_only} == {"alert"}
    conservative, _ = load_policies([POLICIES_DIR / "conservative.yaml"], CATALOG)
    for p in conservative:
        if p.action.type == "retrain":
            assert p.max_per_day == 1
            assert p.cooldown.total_seconds() >= 86400


@pytest.mark.parametrize("path", [*SHIPPED, DEMO], ids=lambda p: p.parent.name + "/" + p.name)
def test_shipped_retrains_wait_for_labels_to_train_and_judge(path: Path):
    # 20% of the new labels are held out to judge the candidate: below 200 labels (40 held out)
    # no gate can tell a recovery from noise, so no shipped policy retrains on fewer.
    policies, _ = load_policies([path], CATALOG)
    for p in policies:
        if isinstance(p.action, RetrainAction):
            assert p.action.min_new_labels >= 200, p.name
            assert p.action.retry_growth >= 1.5, p.name
            assert p.max_per_day is not None, p.name


def test_schema_describes_every_field():
    schema = json_schema()
    json.dumps(schema)

    def undocumented(node: object, path: str) -> list[str]:
        out = []
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if "description" not in prop:
                    out.append(f"{path}.{name}")
            for key, value in node.items():
                out += undocumented(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                out += undocumented(value, f"{path}[{i}]")
        return out

    assert undocumented(schema, "") == []
    policy = schema["$defs"]["Policy"]["properties"]
    assert {"for", "n_of_m", "cooldown", "max_per_day", "trip", "clear", "action"} <= set(policy)


def test_the_quick_demo_policy_is_the_demo_policy_with_its_retrain_action(tmp_path: Path):
    from adaptd.cli.demo_cmd import QUICK_ACTION, demo_policy

    assert demo_policy(quick=False) == DEMO.read_text()
    path = tmp_path / "quick.yaml"
    path.write_text(demo_policy(quick=True))
    quick, errors = load_policies([path], CATALOG)
    full, _ = load_policies([DEMO], CATALOG)
    assert [str(e) for e in errors] == []
    (q,), (f,) = quick, full
    assert isinstance(q.action, RetrainAction) and isinstance(f.action, RetrainAction)
    assert (q.action.min_new_labels, q.max_per_day, q.action.refinements) == (
        QUICK_ACTION["min_new_labels"],
        QUICK_ACTION["max_per_day"],
        QUICK_ACTION["refinements"],
    )
    assert f.action.refinements == 1
    # Everything else is the demo's: the trip, its timing and the retry growth.
    assert (q.trip, q.min_samples, q.cooldown) == (f.trip, f.min_samples, f.cooldown)
    assert q.action.retry_growth == f.action.retry_growth
