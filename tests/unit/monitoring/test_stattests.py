"""Our column tests against Evidently's own implementations, column by column."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from evidently.legacy.calculations.stattests.registry import get_stattest
from evidently.legacy.core import ColumnType

from adaptd.monitoring.detectors.stattests import column_drift

CASES = [
    ("normal-small", lambda r: (r.normal(size=500), r.normal(0.3, size=400)), "numerical"),
    ("normal-small-same", lambda r: (r.normal(size=800), r.normal(size=800)), "numerical"),
    ("normal-large", lambda r: (r.normal(size=3000), r.normal(0.12, size=2000)), "numerical"),
    ("normal-large-same", lambda r: (r.normal(size=3000), r.normal(size=3000)), "numerical"),
    ("counts-small", lambda r: (r.integers(0, 4, 600), r.integers(0, 5, 600)), "numerical"),
    (
        "binary-small",
        lambda r: (r.integers(0, 2, 600), (r.random(600) < 0.6).astype(int)),
        "numerical",
    ),
    ("counts-large", lambda r: (r.integers(0, 4, 5000), r.integers(0, 4, 5000)), "numerical"),
    (
        "cat-small",
        lambda r: (r.choice(list("abc"), 700), r.choice(list("abcc"), 700)),
        "categorical",
    ),
    (
        "cat-large",
        lambda r: (r.choice(list("ab"), 4000), r.choice(list("abb"), 4000)),
        "categorical",
    ),
]


@pytest.mark.parametrize(("name", "make", "kind"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("seed", [0, 1])
def test_verdict_and_statistic_agree_with_evidently(
    name: str, make: object, kind: str, seed: int
) -> None:
    ref, cur = make(np.random.default_rng(seed))  # type: ignore[operator]
    ours = column_drift(ref, cur, kind)  # type: ignore[arg-type]
    feature_type = ColumnType.Numerical if kind == "numerical" else ColumnType.Categorical
    test = get_stattest(pd.Series(ref), pd.Series(cur), feature_type, None)
    with warnings.catch_warnings():
        # Evidently divides by zero on a value unseen in the reference (p = 0: drift); we do not
        warnings.simplefilter("ignore", RuntimeWarning)
        theirs = test(pd.Series(ref), pd.Series(cur), feature_type, None)
    assert ours.drifted == theirs.drifted
    assert ours.statistic == pytest.approx(theirs.drift_score, rel=1e-6, abs=1e-9)
