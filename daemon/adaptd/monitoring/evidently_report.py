"""The one module that imports Evidently: an HTML drift report for reference vs current, and our
own summary of its per-column verdicts (Evidently's Snapshot never leaves this module).

Columns: the text descriptors, the prediction columns (predicted label, confidence, entropy) and
the embeddings projected on the reference PCA, the same columns adaptd's own monitors test.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from adaptd.datasets.descriptors import Tokenizer, descriptors
from adaptd.errors import AdaptdError
from adaptd.monitoring.detectors.embedding import fit_pca, project
from adaptd.monitoring.detectors.prediction import entropy
from adaptd.monitoring.windows import Window

logger = logging.getLogger(__name__)

_PARAMS = re.compile(
    r"ValueDrift\(column=(?P<column>.+?),method=(?P<method>.+?),threshold=(?P<t>[\d.e-]+)\)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ColumnVerdict:
    column: str
    method: str
    value: float
    threshold: float
    drifted: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DriftReport:
    columns: tuple[ColumnVerdict, ...]
    drifted_share: float
    html: Path | None = None


def window_frame(
    window: Window,
    *,
    pca: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None,
    tokenizer: Tokenizer | None = None,
) -> pd.DataFrame:
    """One row per window row with a text and a prediction: descriptors, prediction columns and
    PCA coordinates of the embedding."""
    keep = window.has_prediction & np.array([t is not None for t in window.texts], dtype=bool)
    texts = [t for t, k in zip(window.texts, keep, strict=True) if k and t is not None]
    columns: dict[str, Any] = dict(descriptors(texts, tokenizer))
    probs = window.probabilities[keep]
    columns["predicted_label"] = np.asarray(window.labels, dtype=object)[window.predicted[keep]]
    columns["confidence"] = probs.max(axis=1)
    columns["entropy"] = entropy(probs)
    if pca is not None and window.embeddings is not None:
        mean, axes = pca
        projected = project(window.embeddings[keep], mean, axes)
        for j in range(axes.shape[1]):
            columns[f"pca_{j}"] = projected[:, j]
    return pd.DataFrame(columns)


def drift_report(
    reference: pd.DataFrame, current: pd.DataFrame, *, html: Path | None = None
) -> DriftReport:
    """Run Evidently's DataDriftPreset on the shared columns; optionally save its HTML."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    shared = [c for c in reference.columns if c in current.columns]
    categorical = [c for c in shared if reference[c].dtype == object]
    numerical = [c for c in shared if c not in categorical]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    try:
        with warnings.catch_warnings():
            # Evidently correlates all numeric columns for a widget; a constant column (a
            # descriptor that is 0 on every row) makes numpy warn about 0/0 there. Nothing we use.
            warnings.simplefilter("ignore", RuntimeWarning)
            snapshot = Report([DataDriftPreset(columns=shared)]).run(
                Dataset.from_pandas(current[shared], data_definition=definition),
                Dataset.from_pandas(reference[shared], data_definition=definition),
            )
            if html is not None:
                snapshot.save_html(str(html))
            result = snapshot.dict()
    except (ValueError, TypeError, KeyError) as e:
        raise AdaptdError(f"Evidently could not compute the drift report: {e}") from e
    verdicts = []
    for metric in result.get("metrics", []):
        match = _PARAMS.match(str(metric.get("metric_name", "")))
        if match is None:
            continue
        method, threshold = match["method"], float(match["t"])
        value = float(metric["value"])
        # p-value tests reject when small; distances when large (Evidently's own rule)
        drifted = value < threshold if "p_value" in method else value >= threshold
        verdicts.append(
            ColumnVerdict(
                column=match["column"],
                method=method,
                value=value,
                threshold=threshold,
                drifted=drifted,
            )
        )
    share = sum(v.drifted for v in verdicts) / len(verdicts) if verdicts else 0.0
    return DriftReport(columns=tuple(verdicts), drifted_share=share, html=html)


def window_report(
    reference: Window,
    current: Window,
    out: Path,
    *,
    components: int = 8,
    tokenizer: Tokenizer | None = None,
) -> DriftReport:
    """The HTML report for two windows, written to ``out``."""
    ref_emb = reference.embedding_rows()
    pca = fit_pca(ref_emb, components) if len(ref_emb) > components else None
    ref = window_frame(reference, pca=pca, tokenizer=tokenizer)
    cur = window_frame(current, pca=pca, tokenizer=tokenizer)
    if ref.empty or cur.empty:
        raise AdaptdError(
            f"no report: the reference has {len(ref)} and the current window {len(cur)} "
            "predictions with text"
        )
    return drift_report(ref, cur, html=out)
