"""The checked-in Grafana dashboard is what dashboards/build.py generates."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards"


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_dashboard", DASHBOARDS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_checked_in_dashboard_is_the_generated_one() -> None:
    assert (DASHBOARDS / "adaptd.json").read_text() == generator().render(), (
        "dashboards/adaptd.json is stale: run python dashboards/build.py"
    )


def test_every_panel_queries_prometheus_with_distinct_ref_ids() -> None:
    document = json.loads((DASHBOARDS / "adaptd.json").read_text())
    assert document["uid"] == "adaptd"
    panels = [p for p in document["panels"] if p["type"] != "row"]
    assert len({p["title"] for p in panels}) == len(panels)
    for panel in panels:
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        assert all("adaptd_" in t["expr"] for t in panel["targets"]), panel["title"]
