"""The shared measures against scikit-learn, Fairlearn and statsmodels on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    equalized_odds_difference,
)
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score
from statsmodels.stats.proportion import proportion_confint

from adaptd.evaluation import measures as m

RNG = np.random.default_rng(3)
Y = RNG.integers(0, 3, 500)
P = np.where(RNG.random(500) < 0.7, Y, RNG.integers(0, 3, 500))
GROUPS = [{"g": ("a", "b", "c")[i % 3]} if i % 10 else {} for i in range(500)]


def test_point_measures_match_scikit_learn() -> None:
    assert m.accuracy(Y, P) == pytest.approx(accuracy_score(Y, P))
    assert m.macro_f1(Y, P) == pytest.approx(f1_score(Y, P, average="macro"))
    assert (m.confusion(Y, P, 3) == confusion_matrix(Y, P, labels=[0, 1, 2])).all()
    # a class never predicted nor true is not averaged in (scikit-learn's default labels)
    y2, p2 = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    assert m.macro_f1(y2, p2) == pytest.approx(f1_score(y2, p2, average="macro"))
    assert m.recalls(y2, p2, 3) == [0.5, 1.0, None]
    assert m.majority_share(np.array([1, 1, 1, 0])) == 0.75
    assert np.isnan(m.accuracy(np.array([], dtype=np.int64), np.array([], dtype=np.int64)))


def test_group_gaps_match_fairlearn_and_leave_small_groups_out() -> None:
    yb, pb = (Y == 2).astype(np.int64), (P == 2).astype(np.int64)
    groups = m.groups_of(GROUPS, "g", min_group_size=30)
    assert groups.names == ("a", "b", "c") and groups.rows_without_attribute == 50
    keep = groups.codes >= 0
    names = np.array([a.get("g", "") for a in GROUPS])
    dp = m.dp_gap(groups.codes, Y, P, 2, 3)
    assert dp == pytest.approx(
        demographic_parity_difference(yb[keep], pb[keep], sensitive_features=names[keep])
    )
    eo = m.eo_gap(groups.codes, Y, P, 2, 3)
    assert eo == pytest.approx(
        equalized_odds_difference(yb[keep], pb[keep], sensitive_features=names[keep])
    )
    small = m.groups_of(GROUPS, "g", min_group_size=200)
    assert not small.judged and small.left_out == ("a", "b", "c")
    assert "groups of at least 200 rows" in small.why_not_judged()


def test_wilson_matches_statsmodels() -> None:
    for k, n in [(0, 10), (7, 10), (160, 200), (50, 50)]:
        low, high = proportion_confint(k, n, alpha=0.05, method="wilson")
        iv = m.wilson(k, n, level=0.95)
        assert (iv.low, iv.high) == pytest.approx((low, high))


def test_paired_difference_counts_discordant_pairs() -> None:
    a = np.array([True] * 60 + [False] * 10 + [True] * 20 + [False] * 10)
    b = np.array([True] * 60 + [True] * 10 + [False] * 20 + [False] * 10)
    d = m.paired_difference(a, b, level=0.95)
    assert (d.a_only, d.b_only, d.n) == (20, 10, 100)
    assert d.difference == pytest.approx(0.1)
    # Bonett-Price by hand: p12 = 21/102, p21 = 11/102
    p12, p21 = 21 / 102, 11 / 102
    se = np.sqrt((p12 + p21 - (p12 - p21) ** 2) / 102)
    assert d.interval.low == pytest.approx(p12 - p21 - 1.959964 * se, abs=1e-5)
    assert d.interval.low < 0.1 < d.interval.high
    assert m.mcnemar_p(a, b) == pytest.approx(0.0494, abs=1e-3)
    same = m.paired_difference(a, a, level=0.95)
    assert same.difference == 0 and same.interval.low < 0 < same.interval.high


def test_newcombe_interval_of_independent_proportions() -> None:
    # Newcombe (1998), table II example: 56/70 vs 48/80 -> 0.2, 95 % CI 0.0524 to 0.3339
    d, iv = m.independent_difference(56, 70, 48, 80, level=0.95)
    assert d == pytest.approx(0.2)
    assert (iv.low, iv.high) == pytest.approx((0.0524, 0.3339), abs=1e-3)


def test_bootstrap_interval_is_seeded_and_brackets_the_value() -> None:
    stat = lambda ix: m.macro_f1(Y[ix], P[ix])  # noqa: E731
    a = m.bootstrap_interval(stat, len(Y), samples=200, seed=1, level=0.95)
    b = m.bootstrap_interval(stat, len(Y), samples=200, seed=1, level=0.95)
    assert a == b and a is not None
    assert a.low < m.macro_f1(Y, P) < a.high
    assert m.bootstrap_interval(stat, 0, samples=200, seed=1, level=0.95) is None


@given(k=st.integers(0, 300), extra=st.integers(0, 300), level=st.sampled_from([0.8, 0.9, 0.95]))
def test_wilson_contains_the_estimate_and_narrows_with_confidence(
    k: int, extra: int, level: float
) -> None:
    n = k + extra
    if n == 0:
        return
    iv = m.wilson(k, n, level=level)
    wider = m.wilson(k, n, level=0.99)
    assert iv.low - 1e-12 <= k / n <= iv.high + 1e-12
    assert wider.low <= iv.low + 1e-12 and iv.high <= wider.high + 1e-12
