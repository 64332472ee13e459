"""Embedding drift on the pooled embeddings the model already computes while serving.

Two views, both cheap at 100k rows: per-dimension KS tests on a PCA fitted on the reference (the
"Failing Loudly" recipe: univariate tests plus a multiple-testing correction), and a domain
classifier on a subsample whose ROC-AUC says how separable the two windows are (Evidently's
"model" method, without its fixed overhead).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from adaptd.monitoring.detectors.base import CheckContext, enough, error, insufficient, verdict
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal

FloatArray = npt.NDArray[np.float64]
NAMES = ("drift.embedding.share", "drift.embedding.auc")


def fit_pca(
    reference: npt.NDArray[np.floating[Any]], components: int, *, rows: int = 10_000, seed: int = 0
) -> tuple[FloatArray, FloatArray]:
    """Mean and top principal axes (d x c) of the reference, fitted on at most ``rows`` rows
    (a canonical subsample: the axes of 10k rows are as good as those of 100k, at a tenth of the
    cost); the covariance is d x d, so the eigendecomposition is small."""
    sample = reference
    if len(reference) > rows:
        order = canonical_order(reference, seed)
        pick = np.random.default_rng(seed).permutation(len(reference))[:rows]
        sample = reference[np.sort(order[pick])]
    x = np.asarray(sample, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = centred.T @ centred / max(len(x) - 1, 1)
    axes = _top_eigenvectors(cov, min(components, x.shape[1]), seed)
    # eigenvector signs are arbitrary; fix them so projections are reproducible
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(axes.shape[1])])
    return mean, axes * np.where(signs == 0, 1.0, signs)


def _top_eigenvectors(cov: FloatArray, k: int, seed: int) -> FloatArray:
    """Top-k eigenvectors by subspace iteration: only d x (k+8) products and a tiny eigh. A full
    ``eigh`` of 384 x 384 is cheap alone but took seconds on a busy 2-core box, where
    multithreaded LAPACK contends with the serving threads."""
    d = cov.shape[0]
    width = min(d, k + 8)
    q = np.random.default_rng(seed).standard_normal((d, width))
    for _ in range(10):
        q, _ = np.linalg.qr(cov @ q)
    values, vectors = np.linalg.eigh(q.T @ cov @ q)
    top = np.argsort(values)[::-1][:k]
    return np.asarray(q @ vectors[:, top], dtype=np.float64)


def project(x: npt.NDArray[np.floating[Any]], mean: FloatArray, axes: FloatArray) -> FloatArray:
    """PCA coordinates without materialising the centred copy of a large window."""
    return np.asarray(x @ axes.astype(x.dtype), dtype=np.float64) - mean @ axes


def ks_asymptotic(a: FloatArray, b: FloatArray) -> float:
    """Two-sample KS p-value from Kolmogorov's limit distribution. At 10k+ rows per side it
    matches scipy's to many digits, while scipy's finite-n ``kstwo`` costs 0.1 s per call."""
    a, b = np.sort(a), np.sort(b)
    both = np.concatenate([a, b])
    d = float(
        np.max(
            np.abs(
                np.searchsorted(a, both, "right") / len(a)
                - np.searchsorted(b, both, "right") / len(b)
            )
        )
    )
    en = len(a) * len(b) / (len(a) + len(b))
    return float(stats.kstwobign.sf(d * np.sqrt(en)))


def corrected_rejections(pvalues: FloatArray, alpha: float, method: str) -> npt.NDArray[np.bool_]:
    """Which hypotheses are rejected under Bonferroni or Benjamini-Hochberg."""
    m = len(pvalues)
    if method == "bonferroni":
        return pvalues <= alpha / m
    order = np.argsort(pvalues)
    ranked = pvalues[order]
    below = ranked <= alpha * np.arange(1, m + 1) / m
    reject = np.zeros(m, dtype=bool)
    if below.any():
        last = int(np.nonzero(below)[0].max())
        reject[order[: last + 1]] = True
    return reject


def canonical_order(x: npt.NDArray[np.floating[Any]], seed: int) -> npt.NDArray[np.int64]:
    """An order of rows that depends on their values only, so subsamples ignore row order."""
    direction = np.asarray(np.random.default_rng(seed).standard_normal(x.shape[1]), dtype=x.dtype)
    return np.argsort(x @ direction, kind="stable")


def domain_auc(
    reference: npt.NDArray[np.floating[Any]],
    current: npt.NDArray[np.floating[Any]],
    *,
    rows: int,
    seed: int,
) -> float:
    """ROC-AUC of a logistic regression telling current from reference, on a held-out half."""
    rng = np.random.default_rng(seed)
    ref = reference[canonical_order(reference, seed)[rng.permutation(len(reference))[:rows]]]
    cur = current[canonical_order(current, seed)[rng.permutation(len(current))[:rows]]]
    x = np.vstack([ref, cur]).astype(np.float64)
    y = np.concatenate([np.zeros(len(ref)), np.ones(len(cur))])
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-12)
    test = np.zeros(len(x), dtype=bool)
    test[rng.permutation(len(x))[: len(x) // 2]] = True
    if len(np.unique(y[~test])) < 2 or len(np.unique(y[test])) < 2:
        return 0.5
    model = LogisticRegression(C=1.0, max_iter=200)
    model.fit(x[~test], y[~test])
    return float(roc_auc_score(y[test], model.decision_function(x[test])))


def embedding_drift(ctx: CheckContext, reference: Window, current: Window) -> list[Signal]:
    settings = ctx.settings
    ref, cur = reference.embedding_rows(), current.embedding_rows()
    n_ref, n_cur = len(ref), len(cur)
    if not enough(ctx, n_ref, n_cur):
        reason = None if n_ref or n_cur else "no embeddings were logged with the predictions"
        return [
            insufficient(ctx, n, n_reference=n_ref, n_current=n_cur, reason=reason) for n in NAMES
        ]
    if ref.shape[1] != cur.shape[1]:
        reason = f"embedding width differs: reference {ref.shape[1]}, current {cur.shape[1]}"
        return [error(ctx, n, reason, n_reference=n_ref, n_current=n_cur) for n in NAMES]
    mean, axes = fit_pca(ref, settings.embedding_components, seed=settings.seed)
    large = min(n_ref, n_cur) > 10_000
    ref_p = project(ref, mean, axes)
    cur_p = project(cur, mean, axes)
    pvalues = np.array(
        [
            ks_asymptotic(ref_p[:, j], cur_p[:, j])
            if large
            else stats.ks_2samp(ref_p[:, j], cur_p[:, j]).pvalue
            for j in range(axes.shape[1])
        ]
    )
    rejected = corrected_rejections(pvalues, settings.alpha, settings.correction)
    share = float(rejected.mean())
    auc = domain_auc(ref, cur, rows=settings.domain_classifier_rows, seed=settings.seed)
    return [
        verdict(
            ctx,
            "drift.embedding.share",
            share,
            drifted=share >= settings.embedding_drift_share,
            n_reference=n_ref,
            n_current=n_cur,
            details={
                "components": int(axes.shape[1]),
                "correction": settings.correction,
                "p_values": [float(p) for p in pvalues],
            },
        ),
        verdict(
            ctx,
            "drift.embedding.auc",
            auc,
            drifted=auc > settings.auc_threshold,
            n_reference=n_ref,
            n_current=n_cur,
            details={
                "rows_per_side": min(settings.domain_classifier_rows, n_ref, n_cur),
                "threshold": settings.auc_threshold,
            },
        ),
    ]
