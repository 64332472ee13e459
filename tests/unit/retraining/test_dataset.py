from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptd.datasets.records import Example
from adaptd.retraining.dataset import (
    AssemblySpec,
    RetrainRejected,
    assemble,
    check_labels,
    late_holdout,
    text_key,
)

LABELS = ("negative", "positive")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ex(i: int, label: str, **attrs: str) -> Example:
    return Example(
        text=f"text number {i}", label=label, attributes=attrs, timestamp=T0 + timedelta(minutes=i)
    )


def data(n: int, positive_every: int = 2) -> list[Example]:
    return [ex(i, "positive" if i % positive_every == 0 else "negative") for i in range(n)]


SPEC = AssemblySpec(labels=LABELS, min_labels=10, min_holdout=5, holdout_fraction=0.2)


def test_too_few_labels_names_the_count() -> None:
    with pytest.raises(RetrainRejected, match="only 9 labelled examples.*at least 10"):
        assemble(data(9), [], SPEC)


def test_single_class_is_rejected() -> None:
    with pytest.raises(RetrainRejected, match="all 30 labelled examples are 'negative'"):
        assemble([ex(i, "negative") for i in range(30)], [], SPEC)


def test_label_outside_the_label_set_is_named() -> None:
    bad = [*data(30), ex(99, "neutral"), ex(98, "neutral")]
    with pytest.raises(RetrainRejected, match=r"label 'neutral' \(2 examples\) is not one of"):
        check_labels(bad, SPEC)


def test_newest_labels_are_held_out() -> None:
    ts = assemble(data(100), [], SPEC)
    assert len(ts.holdout) == 20
    newest_train = max(e.timestamp for e in ts.train if e.timestamp)
    assert all(e.timestamp and e.timestamp > newest_train for e in ts.holdout)


def test_duplicates_dropped_after_normalisation_newest_label_wins() -> None:
    items = data(40)
    dup = Example(text="  TEXT   number 3 ", label="positive", timestamp=T0 + timedelta(hours=1))
    ts = assemble([*items, dup], [], AssemblySpec(labels=LABELS, min_labels=10, min_holdout=1))
    keys = [text_key(e.text) for e in (*ts.train, *ts.holdout)]
    assert len(keys) == len(set(keys)) == 40
    assert ts.n_duplicates == 1
    kept = [e for e in (*ts.train, *ts.holdout) if text_key(e.text) == text_key("text number 3")]
    assert kept[0].label == "positive"


def test_replay_is_mixed_in_at_the_ratio_and_never_overlaps_holdout_or_golden() -> None:
    new = data(100)
    replay = [Example(text=f"old {i}", label=("negative", "positive")[i % 2]) for i in range(500)]
    holdout_copy = Example(text="text number 99", label="positive")
    golden = [Example(text="old 7", label="negative")]
    ts = assemble(new, [*replay, holdout_copy], SPEC, exclude=golden)
    assert ts.n_new == 80
    assert ts.n_replay in (79, 80)  # one sampled replay may be a holdout or golden text
    texts = {e.text for e in ts.train}
    assert "text number 99" not in texts and "old 7" not in texts
    assert not texts & {e.text for e in ts.holdout}
    # the trainer draws its dev rows from the new labels by these flags
    assert len(ts.replayed) == len(ts.train) and sum(ts.replayed) == ts.n_replay
    origins = zip(ts.train, ts.replayed, strict=True)
    assert all(e.text.startswith("old") == old for e, old in origins)


def test_reweight_balances_class_mass() -> None:
    items = data(100, positive_every=5)  # 20 % positive
    ts = assemble(items, [], SPEC)
    mass = Counter[str]()
    for e, w in zip(ts.train, ts.weights, strict=True):
        mass[e.label or ""] += w
    assert mass["positive"] == pytest.approx(mass["negative"])
    assert sum(ts.weights) / len(ts.weights) == pytest.approx(1.0)


def test_oversample_balances_counts() -> None:
    spec = AssemblySpec(labels=LABELS, min_labels=10, min_holdout=5, balance="oversample")
    ts = assemble(data(100, positive_every=5), [], spec)
    counts = Counter(e.label for e in ts.train)
    assert counts["positive"] == counts["negative"]


def test_under_served_group_is_upweighted() -> None:
    items = [
        ex(i, ("negative", "positive")[i % 2], gender="female" if i % 10 == 0 else "male")
        for i in range(200)
    ]
    spec = AssemblySpec(labels=LABELS, min_labels=10, balance="none", group_attributes=("gender",))
    ts = assemble(items, [], spec)
    w = {e.attributes["gender"]: wt for e, wt in zip(ts.train, ts.weights, strict=True)}
    assert w["female"] > 5 * w["male"]


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.sampled_from(LABELS), min_size=12, max_size=80),
    dup_every=st.integers(2, 7),
    ratio=st.floats(0, 2),
)
def test_invariants(labels: list[str], dup_every: int, ratio: float) -> None:
    items = [
        Example(
            text=f"t{i // dup_every if i % 3 == 0 else i}",
            label=lb,
            timestamp=T0 + timedelta(seconds=i),
        )
        for i, lb in enumerate(labels)
    ]
    replay = [Example(text=f"r{i}", label=LABELS[i % 2]) for i in range(50)]
    spec = AssemblySpec(labels=LABELS, min_labels=4, min_holdout=2, replay_ratio=ratio)
    try:
        ts = assemble(items, replay, spec)
    except RetrainRejected:
        return
    train_keys = [text_key(e.text) for e in ts.train]
    assert len(train_keys) == len(set(train_keys))
    assert not set(train_keys) & {text_key(e.text) for e in ts.holdout}
    assert sum(ts.weights) / len(ts.weights) == pytest.approx(1.0)
    assert all(w > 0 for w in ts.weights)
    assert len({e.label for e in ts.train}) == 2


def test_holdout_is_new_to_the_champion_too() -> None:
    labelled = data(100)
    # The champion replayed the 5 newest texts and was trained on data up to minute 79: none
    # of that may judge it, so the holdout is the newest rows after both.
    replayed = labelled[-5:]
    training = assemble(
        labelled,
        replayed,
        SPEC,
        champion_trained=replayed,
        champion_until=T0 + timedelta(minutes=79),
    )
    held = {e.text for e in training.holdout}
    assert held == {f"text number {i}" for i in range(80, 95)}
    trained = {text_key(e.text) for e in training.train}
    assert not trained & {text_key(t) for t in held}
    # The rows the champion saw are not wasted: the candidate trains on them.
    assert {text_key(e.text) for e in replayed} <= trained


def test_nothing_new_to_the_champion_is_a_clear_rejection() -> None:
    labelled = data(40)
    with pytest.raises(RetrainRejected, match="none of the 40 labelled examples is new"):
        assemble(labelled, [], SPEC, champion_until=T0 + timedelta(days=1))


def test_late_labels_are_only_rows_neither_model_trained_on_newest_first() -> None:
    training = assemble(data(100), [], SPEC)
    golden = [ex(500, "positive")]
    replayed = [ex(501, "negative")]
    fresh = [ex(i, "positive" if i % 2 else "negative") for i in range(200, 230)]
    late = [
        *training.train[:3],  # trained on by the candidate
        *training.holdout[:2],  # already held out
        *golden,
        *replayed,  # the champion may have trained on it
        Example(text="unknown label", label="neutral", timestamp=T0 + timedelta(days=1)),
        Example(text="old", label="positive", timestamp=T0),  # in the champion's window
        *fresh,
    ]
    spec = AssemblySpec(labels=LABELS)
    kept = late_holdout(
        late, training, spec, limit=20, exclude=golden, champion_trained=replayed,
        champion_until=T0 + timedelta(minutes=150),
    )  # fmt: skip
    assert [e.text for e in kept] == [e.text for e in fresh[-20:]]  # newest 20, in time order
    everything = late_holdout(late, training, spec, limit=1000, exclude=golden)
    assert {e.text for e in everything} == {e.text for e in (*fresh, *replayed)} | {"old"}
    assert late_holdout(late, training, spec, limit=0) == ()
