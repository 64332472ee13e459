"""Input drift on raw text: cheap per-text descriptors (:mod:`adaptd.datasets.descriptors`), each
tested with Evidently's column rule. Descriptors need no second model.

A row without its text (``privacy.text: hashed``) counts with the descriptors the prediction log
kept of it, so text drift is watched on every prediction in that mode too; only ``oov_share``,
which needs the tokenizer, is then measured on the texts that came back with feedback alone.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from adaptd.datasets.descriptors import TEXT_DESCRIPTORS, Tokenizer, descriptors
from adaptd.monitoring.detectors.base import CheckContext, enough, error, insufficient, verdict
from adaptd.monitoring.detectors.stattests import column_drift, wasserstein_normed
from adaptd.monitoring.windows import Window
from adaptd.signals import Signal, Status

Columns = dict[str, npt.NDArray[np.float64]]


def _kept(window: Window) -> list[Mapping[str, float]]:
    """The descriptors the log kept for the window's rows without a text."""
    return [f for t, f in zip(window.texts, window.text_features, strict=False) if t is None and f]


def window_descriptors(window: Window, tokenizer: Tokenizer | None = None) -> Columns:
    """Each descriptor over the window's rows: computed from the text where there is one, read
    from what the log kept (``text_features``) where there is not. ``oov_share`` comes from
    texts alone (the log keeps no tokenizer's view)."""
    columns = descriptors(window.text_list(), tokenizer)
    kept = _kept(window)
    for name in list(columns) if kept else []:
        extra = [float(f[name]) for f in kept if name in f]
        if extra:
            columns[name] = np.concatenate([columns[name], np.asarray(extra, dtype=np.float64)])
    return columns


def text_drift(
    ctx: CheckContext, reference: Window, current: Window, tokenizer: Tokenizer | None = None
) -> list[Signal]:
    """``drift.text.<descriptor>`` per descriptor and ``drift.text.share`` over them."""
    ref_texts, cur_texts = reference.text_list(), current.text_list()
    # Counted before anything is computed: a window too small to judge is never tokenized.
    n_ref = len(ref_texts) + len(_kept(reference))
    n_cur = len(cur_texts) + len(_kept(current))
    names = [f"drift.text.{d}" for d in TEXT_DESCRIPTORS]
    if not enough(ctx, n_ref, n_cur):
        return [
            insufficient(ctx, name, n_reference=n_ref, n_current=n_cur)
            for name in [*names, "drift.text.share"]
        ]
    ref_desc = window_descriptors(reference, tokenizer)
    cur_desc = window_descriptors(current, tokenizer)
    signals: list[Signal] = []
    drifted = 0
    tested = 0
    for name in TEXT_DESCRIPTORS:
        signal_name = f"drift.text.{name}"
        if name not in ref_desc:
            signals.append(
                error(
                    ctx, signal_name, "no tokenizer was given", n_reference=n_ref, n_current=n_cur
                )
            )
            continue
        ref, cur = ref_desc[name], cur_desc[name]
        if not enough(ctx, len(ref), len(cur)):  # oov_share on the texts feedback sent back
            signals.append(insufficient(ctx, signal_name, n_reference=len(ref), n_current=len(cur)))
            continue
        test = column_drift(ref, cur, "numerical")
        tested += 1
        drifted += int(test.drifted)
        signals.append(
            verdict(
                ctx,
                signal_name,
                wasserstein_normed(ref, cur),
                drifted=test.drifted,
                n_reference=len(ref),
                n_current=len(cur),
                details={
                    "method": test.method,
                    "statistic": test.statistic,
                    "reference_mean": float(ref.mean()),
                    "current_mean": float(cur.mean()),
                },
            )
        )
    share = drifted / tested
    distinct = len(set(cur_texts))
    details: dict[str, object] = {
        "drifted": [s.name for s in signals if s.status is Status.DRIFT],
        "tested": tested,
        "distinct_current_texts": distinct,
    }
    # One text repeated over a whole window (a stuck client, a replay) can keep most descriptors
    # inside their reference range; it is never normal traffic, so it is drift on its own.
    degenerate = distinct == 1 and len(set(ref_texts)) > 1
    if degenerate:
        details["reason"] = "every text in the current window is the same"
    signals.append(
        verdict(
            ctx,
            "drift.text.share",
            share,
            drifted=share >= ctx.settings.drift_share or degenerate,
            n_reference=n_ref,
            n_current=n_cur,
            details=details,
        )
    )
    return signals
