"""Embedding drift on the pooled embeddings the model already computes while serving.

Two views, both cheap at 100k rows: per-dimension KS tests on a PCA fitted on the reference (the
"Failing Loudly" recipe: univariate tests plus a multiple-testing correction), and a domain
classifier on a subsample whose ROC-AUC says how separable the two windows are (Evidently's
"model" method, without its fixed overhead).
"""

from __future__ import annotations

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


def fit_pca(reference: FloatArray, components: int) -> tuple[FloatArray, FloatArray]:
    """Mean and top principal axes (d x c) from the reference covariance (d x d is small)."""
    mean = reference.mean(axis=0)
    centred = reference - mean
    cov = centred.T @ centred / max(len(reference) - 1, 1)
    values, vectors = np.linalg.eigh(cov)
    order = np.argsort(values)[::-1][: min(components, reference.shape[1])]
    axes = vectors[:, order]
    # eigenvector signs are arbitrary; fix them so projections are reproducible
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(axes.shape[1])])
    return mean, axes * np.where(signs == 0, 1.0, signs)


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


def canonical_order(x: FloatArray, seed: int) -> npt.NDArray[np.int64]:
    """An order of rows that depends on their values only, so subsamples ignore row order."""
    direction = np.random.default_rng(seed).standard_normal(x.shape[1])
    return np.argsort(x @ direction, kind="stable")


def domain_auc(reference: FloatArray, current: FloatArray, *, rows: int, seed: int) -> float:
    """ROC-AUC of a logistic regression telling current from reference, on a held-out half."""
    rng = np.random.default_rng(seed)
    ref = reference[canonical_order(reference, seed)]
    cur = current[canonical_order(current, seed)]
    ref = ref[rng.permutation(len(ref))[:rows]]
    cur = cur[rng.permutation(len(cur))[:rows]]
    x = np.vstack([ref, cur])
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
    mean, axes = fit_pca(ref, settings.embedding_components)
    ref_p = (ref - mean) @ axes
    cur_p = (cur - mean) @ axes
    pvalues = np.array(
        [stats.ks_2samp(ref_p[:, j], cur_p[:, j]).pvalue for j in range(axes.shape[1])]
    )
    rejected = corrected_rejections(pvalues, settings.alpha, settings.correction)
    share = float(rejected.mean())
    auc = domain_auc(ref, cur, rows=settings.domain_classifier_rows, seed=settings.seed)
    return [
        verdict(
            ctx,
            "drift.embedding.share",
            share,
            drifted=bool(rejected.any()),
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
