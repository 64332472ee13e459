"""bench.adaptation.retrain's replay weighting: the ratio asked for, the loss's scale kept."""

from __future__ import annotations

import pytest
from bench.adaptation.retrain import replay_weighted

from adaptd.datasets.records import Example
from adaptd.retraining.dataset import TrainingSet


def _set(new: int, replayed: int, weights: list[float] | None = None) -> TrainingSet:
    rows = tuple(Example(text=f"t{i}", label="positive") for i in range(new + replayed))
    flags = tuple([False] * new + [True] * replayed)
    return TrainingSet(
        train=rows,
        weights=tuple(weights or [1.0] * len(rows)),
        holdout=(),
        n_new=new,
        n_replay=replayed,
        n_duplicates=0,
        replayed=flags,
    )


def test_too_few_replayed_rows_weigh_as_many_as_the_ratio_asks() -> None:
    data = replay_weighted(_set(new=1500, replayed=234, weights=[1.2] * 900 + [0.7] * 834))
    w = data.weights
    old = sum(x for x, r in zip(w, data.replayed, strict=True) if r)
    new = sum(x for x, r in zip(w, data.replayed, strict=True) if not r)
    assert old == pytest.approx(new)
    assert sum(w) / len(w) == pytest.approx(1.0)
    # the class weights inside each part keep their proportions
    assert w[0] / w[1000] == pytest.approx(1.2 / 0.7)


def test_enough_replayed_rows_or_none_are_left_alone() -> None:
    enough = _set(new=200, replayed=200)
    assert replay_weighted(enough) is enough
    assert replay_weighted(enough, ratio=0.5) is enough
    nothing_replayed = _set(new=200, replayed=0)
    assert replay_weighted(nothing_replayed) is nothing_replayed
