from __future__ import annotations

import re

from adaptd.datasets.descriptors import TEXT_DESCRIPTORS
from adaptd.monitoring.catalog import known_signals


def test_names_are_dotted_stable_and_parametrised() -> None:
    catalog = known_signals(["gender", "region"], ["negative", "positive"])
    assert all(re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", n) for n in catalog)
    assert {"bias.gender.dp_diff", "bias.region.eo_diff", "performance.recall.positive"} <= set(
        catalog
    )
    assert {f"drift.text.{d}" for d in TEXT_DESCRIPTORS} <= set(catalog)
    assert catalog["performance.accuracy"].higher_is_worse is False
    assert catalog["drift.embedding.auc"].bounds == (0.0, 1.0)
    assert all(spec.name == name and spec.description for name, spec in catalog.items())
