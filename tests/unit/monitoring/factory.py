"""Seeded synthetic windows for monitor tests: predictions built as the serving path logs them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np

from adaptd.monitoring.detectors.base import CheckContext
from adaptd.monitoring.settings import MonitorsSettings
from adaptd.monitoring.windows import Window, build_window
from adaptd.storage.records import LabelledPrediction, PredictionRecord

LABELS = ("negative", "positive")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = "the film was good bad great dull plot actor scene story fine awful superb".split()
TWEET_WORDS = "lol omg @user #fail http://t.co/x wow soooo gr8 idk tbh".split()


def records(
    n: int,
    *,
    seed: int = 0,
    positive_share: float = 0.5,
    confidence: float = 2.0,
    error_rate: float = 0.1,
    embedding_shift: float = 0.0,
    dim: int = 16,
    tweet_share: float = 0.0,
    groups: Sequence[str] = ("a", "b"),
    group_bias: float = 0.0,
    labelled: float = 1.0,
    calibrated: bool = False,
    adapter: str = "v1",
    start: datetime = NOW,
) -> list[PredictionRecord | LabelledPrediction]:
    """``n`` predictions; a share ``labelled`` joined with true labels wrong at ``error_rate``.

    ``calibrated`` draws errors from the model's own confidence instead of ``error_rate``;
    ``group_bias`` raises the positive rate of the first group by that much.
    """
    rng = np.random.default_rng(seed)
    out: list[PredictionRecord | LabelledPrediction] = []
    for i in range(n):
        group = groups[i % len(groups)] if groups else None
        share = (
            positive_share + (group_bias if group == groups[0] else 0.0)
            if groups
            else positive_share
        )
        pred = int(rng.random() < share)
        margin = abs(rng.normal(confidence, 1.0))
        p_pos = 1 / (1 + np.exp(-margin if pred else margin))
        vocab = TWEET_WORDS if rng.random() < tweet_share else WORDS
        text = " ".join(rng.choice(vocab, size=int(rng.integers(3, 15))))
        vec = rng.normal(size=dim) + embedding_shift
        record = PredictionRecord(
            id=f"{seed}-{i}",
            ts=start + timedelta(seconds=i),
            adapter=adapter,
            text=text,
            text_hash=str(hash(text)),
            label=LABELS[pred],
            score=float(max(p_pos, 1 - p_pos)),
            probabilities={"negative": float(1 - p_pos), "positive": float(p_pos)},
            embedding=np.asarray(vec, dtype=np.float16).tobytes(),
            attributes={"group": group} if group else {},
        )
        if rng.random() < labelled:
            # calibrated: the truth follows the model's own probability (errors where it is unsure)
            wrong = rng.random() < (1 - max(p_pos, 1 - p_pos) if calibrated else error_rate)
            truth = 1 - pred if wrong else pred
            out.append(
                LabelledPrediction(
                    prediction=record, true_label=LABELS[truth], feedback_ts=record.ts
                )
            )
        else:
            out.append(record)
    return out


def window(n: int, **kwargs: object) -> Window:
    return build_window(records(n, **kwargs), LABELS, adapter="v1")  # type: ignore[arg-type]


def context(**settings: object) -> CheckContext:
    defaults: dict[str, object] = {
        "min_samples": 100,
        "attributes": ["group"],
        "bootstrap_samples": 50,
    }
    defaults.update(settings)
    return CheckContext(now=NOW, settings=MonitorsSettings(**defaults), adapter="v1")  # type: ignore[arg-type]


def by_name(signals: Sequence[object]) -> dict[str, object]:
    return {s.name: s for s in signals}  # type: ignore[attr-defined]
