"""A large window checked by adaptd and by Evidently's DataDriftPreset on the same columns."""

from __future__ import annotations

import resource
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd

from adaptd.monitoring.detectors.base import CheckContext
from adaptd.monitoring.detectors.embedding import embedding_drift, fit_pca
from adaptd.monitoring.detectors.stattests import column_drift
from adaptd.monitoring.evidently_report import drift_report, window_frame
from adaptd.monitoring.runner import run_checks
from adaptd.monitoring.settings import MonitorsSettings
from bench.monitoring.data import Scenario, sample, window_of

NOW = pd.Timestamp("2026-01-01", tz="UTC").to_pydatetime()


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(s: Scenario, rows: int, evidently_embedding_rows: int) -> dict[str, Any]:
    settings = MonitorsSettings(min_samples=200)
    ref_ex = sample(s.movies_train, rows, seed=1)
    # the current window: 80% movie reviews, 20% tweets (some columns drift, some do not)
    cur_ex = sample(s.movies_test, rows - rows // 5, seed=2) + sample(s.tweets, rows // 5, seed=3)
    ref, cur = window_of(s, ref_ex), window_of(s, cur_ex)
    rss_before = rss_mb()

    t0 = time.perf_counter()
    signals = run_checks(ref, cur, settings, now=NOW)
    ours_full = time.perf_counter() - t0
    rss_ours = rss_mb()

    # Same columns for both: descriptors, prediction columns, embedding PCA coordinates.
    t0 = time.perf_counter()
    pca = fit_pca(ref.embedding_rows(), settings.embedding_components)
    ref_df = window_frame(ref, pca=pca)
    cur_df = window_frame(cur, pca=pca)
    frames_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours_cols = {
        c: column_drift(
            ref_df[c].to_numpy(),
            cur_df[c].to_numpy(),
            "categorical" if ref_df[c].dtype == object else "numerical",
        )
        for c in ref_df.columns
    }
    ours_columns_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    report = drift_report(ref_df, cur_df)
    evidently_s = time.perf_counter() - t0
    theirs = {v.column: v.drifted for v in report.columns}
    agree = [c for c in ours_cols if c in theirs and ours_cols[c].drifted == theirs[c]]

    ctx = CheckContext(now=NOW, settings=settings, adapter="bench")
    t0 = time.perf_counter()
    emb = embedding_drift(ctx, ref, cur)
    ours_embedding_s = time.perf_counter() - t0
    evidently_embedding_s = evidently_embeddings(
        ref.embedding_rows()[:evidently_embedding_rows],
        cur.embedding_rows()[:evidently_embedding_rows],
    )
    return {
        "rows": rows,
        "ours_full_check_s": ours_full,
        "ours_columns_s": ours_columns_s,
        "column_frames_s": frames_s,
        "evidently_preset_s": evidently_s,
        "ratio_columns_vs_evidently": ours_columns_s / evidently_s,
        "ratio_full_check_vs_evidently": ours_full / evidently_s,
        "agreement": len(agree) / len(ours_cols),
        "columns": len(ours_cols),
        "disagreeing": sorted(set(ours_cols) - set(agree)),
        "drifted_columns_ours": sorted(c for c, v in ours_cols.items() if v.drifted),
        "ours_embedding_s": ours_embedding_s,
        "embedding_signals": {x.name: (str(x.status), x.value) for x in emb},
        "evidently_embedding_rows": evidently_embedding_rows,
        "evidently_embedding_s": evidently_embedding_s,
        "peak_rss_mb_before_check": rss_before,
        "peak_rss_mb_after_check": rss_ours,
        "signals_drifted": sorted(x.name for x in signals if str(x.status) == "drift"),
    }


def evidently_embeddings(ref: np.ndarray[Any, Any], cur: np.ndarray[Any, Any]) -> float:
    """Evidently's default embedding drift ("model" method) on the raw 384-d vectors."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    cols = [f"e{j}" for j in range(ref.shape[1])]
    definition = DataDefinition(numerical_columns=cols, embeddings={"emb": cols})
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # one plain column besides the embedding: the preset divides by its column count
        Report([DataDriftPreset(columns=["e0"], embeddings=["emb"])]).run(
            Dataset.from_pandas(pd.DataFrame(cur, columns=cols), data_definition=definition),
            Dataset.from_pandas(pd.DataFrame(ref, columns=cols), data_definition=definition),
        )
    return time.perf_counter() - t0
