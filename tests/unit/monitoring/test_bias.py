"""Bias signals against Fairlearn's own metrics on the same rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from adaptd.monitoring.detectors.bias import bias
from adaptd.signals import Status
from tests.unit.monitoring.factory import by_name, context, window


def test_matches_fairlearn() -> None:
    cur = window(1200, seed=2, group_bias=0.2, error_rate=0.2)
    s = by_name(bias(context(), cur))
    groups = np.array([a["group"] for a in cur.attributes])
    assert s["bias.group.dp_diff"].value == pytest.approx(
        demographic_parity_difference(cur.y_true, cur.predicted, sensitive_features=groups)
    )
    mask = cur.labelled
    assert s["bias.group.eo_diff"].value == pytest.approx(
        equalized_odds_difference(
            cur.y_true[mask], cur.predicted[mask], sensitive_features=groups[mask]
        )
    )
    assert s["bias.group.dp_diff"].status is Status.DRIFT
    rates = s["bias.group.dp_diff"].details["by_group"]
    assert rates["a"]["positive_rate"] - rates["b"]["positive_rate"] == pytest.approx(
        s["bias.group.dp_diff"].value
    )
    assert set(rates["a"]) == {"positive_rate", "accuracy", "tpr", "fpr"}
    low, high = s["bias.group.dp_diff"].details["ci95"]
    assert low <= s["bias.group.dp_diff"].value <= high


def test_fair_groups_are_ok() -> None:
    s = by_name(bias(context(), window(2000, seed=3)))
    assert s["bias.group.dp_diff"].status is Status.OK
    assert s["bias.group.accuracy_diff"].status is Status.OK


def test_small_and_missing_groups_are_left_out_and_counted() -> None:
    s = by_name(bias(context(min_group_size=400), window(600, seed=2, groups=("a", "b", "c"))))
    dp = s["bias.group.dp_diff"]
    assert dp.status is Status.INSUFFICIENT_DATA and dp.value is None
    assert "group sizes" in dp.details["reason"]
    cur = window(600, seed=2)
    stripped = dataclasses.replace(cur, attributes=tuple({} for _ in cur.attributes))
    missing = by_name(bias(context(), stripped))["bias.group.dp_diff"]
    assert missing.status is Status.INSUFFICIENT_DATA
    assert "600 rows without the attribute" in missing.details["reason"]


def test_unconfigured_attribute_emits_nothing() -> None:
    assert bias(context(attributes=[]), window(300, seed=1)) == []
