from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from adaptd.monitoring.detectors.embedding import (
    corrected_rejections,
    domain_auc,
    embedding_drift,
    fit_pca,
    ks_asymptotic,
)
from adaptd.signals import Status
from tests.unit.monitoring.factory import by_name, context, window


def test_shifted_embeddings_drift_golden() -> None:
    ctx = context()
    signals = by_name(
        embedding_drift(ctx, window(600, seed=1), window(600, seed=2, embedding_shift=0.3))
    )
    assert signals["drift.embedding.share"].status is Status.DRIFT
    assert signals["drift.embedding.auc"].status is Status.DRIFT
    assert signals["drift.embedding.auc"].value > 0.7


def test_stable_embeddings_do_not_drift() -> None:
    signals = by_name(embedding_drift(context(), window(600, seed=1), window(600, seed=2)))
    assert signals["drift.embedding.share"].status is Status.OK
    assert signals["drift.embedding.auc"].status is Status.OK
    assert abs(signals["drift.embedding.auc"].value - 0.5) < 0.05


def test_pca_recovers_the_dominant_axis() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 5)) * np.array([5.0, 1.0, 1.0, 1.0, 1.0])
    _, axes = fit_pca(x, 2)
    assert abs(axes[0, 0]) == pytest.approx(1.0, abs=0.01)


def test_corrections() -> None:
    p = np.array([0.001, 0.011, 0.02, 0.04, 0.5])
    assert list(corrected_rejections(p, 0.05, "bonferroni")) == [True, False, False, False, False]
    # Benjamini-Hochberg: thresholds 0.01, 0.02, 0.03, 0.04, 0.05 -> the first four pass
    assert list(corrected_rejections(p, 0.05, "bh")) == [True, True, True, True, False]


def test_domain_auc_ignores_row_order() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 8)), rng.normal(0.1, size=(400, 8))
    first = domain_auc(a, b, rows=300, seed=0)
    assert domain_auc(a[::-1], b[rng.permutation(400)], rows=300, seed=0) == first


def test_no_embeddings_logged_is_insufficient_with_reason() -> None:
    ref, cur = window(300, seed=1), window(300, seed=2)
    bare = type(cur)(
        **{f: getattr(cur, f) for f in cur.__slots__ if f != "embeddings"}, embeddings=None
    )
    signals = embedding_drift(context(), ref, bare)
    assert {s.status for s in signals} == {Status.INSUFFICIENT_DATA}
    assert signals[0].n_current == 0


def test_width_mismatch_is_an_error() -> None:
    signals = embedding_drift(context(), window(300, seed=1, dim=8), window(300, seed=2, dim=16))
    assert {s.status for s in signals} == {Status.ERROR}
    assert "width" in signals[0].details["reason"]


def test_asymptotic_ks_matches_scipy_on_large_samples() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=20_000), rng.normal(0.02, size=15_000)
    assert ks_asymptotic(a, b) == pytest.approx(stats.ks_2samp(a, b).pvalue, rel=0.02)
