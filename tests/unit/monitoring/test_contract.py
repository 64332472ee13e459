"""The contract every monitor keeps, checked over the whole pass (run_checks):

- every emitted name is in the catalog, once;
- value is None exactly when there is no verdict, and sample sizes are never negative;
- below min_samples on the windows nothing has a verdict;
- verdicts do not depend on row order (except the streaming ADWIN detector, whose input is the
  time-ordered error stream by design);
- bad input (NaN probabilities, one class, empty windows) yields defined signals, never a crash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptd.monitoring.catalog import known_signals
from adaptd.monitoring.runner import run_checks
from adaptd.monitoring.settings import MonitorsSettings, TermPair
from adaptd.monitoring.windows import Window, build_window
from adaptd.signals import Signal, Status
from tests.unit.monitoring.factory import LABELS, NOW, records, window

SETTINGS = MonitorsSettings(
    min_samples=60,
    attributes=["group"],
    min_group_size=10,
    bootstrap_samples=20,
    counterfactual_pairs=[TermPair(a="good", b="bad")],
    domain_classifier_rows=200,
)
ORDER_DEPENDENT = {"concept.drift", "concept.error_rate"}


def predict(texts: Sequence[str]) -> list[str]:
    return ["positive" if "good" in t else "negative" for t in texts]


def tokenize(texts: Sequence[str]) -> list[list[str]]:
    return [t.split() for t in texts]


def check(reference: Window, current: Window, s: MonitorsSettings = SETTINGS) -> list[Signal]:
    return run_checks(reference, current, s, now=NOW, tokenizer=tokenize, predict=predict)


def assert_contract(signals: list[Signal]) -> None:
    names = [x.name for x in signals]
    assert len(names) == len(set(names))
    catalog = known_signals(SETTINGS.attributes, LABELS)
    assert set(names) <= set(catalog), set(names) - set(catalog)
    for x in signals:
        assert (x.value is None) == (not x.has_verdict), x
        assert x.n_reference >= 0 and x.n_current >= 0
        if x.status in (Status.ERROR, Status.INSUFFICIENT_DATA):
            assert x.details.get("reason"), x


def test_a_full_pass_emits_the_whole_catalog() -> None:
    signals = check(window(300, seed=1), window(300, seed=2))
    assert_contract(signals)
    assert {x.name for x in signals} == set(known_signals(SETTINGS.attributes, LABELS))


@settings(max_examples=15, deadline=None)
@given(n_ref=st.integers(0, 59), n_cur=st.integers(0, 200), seed=st.integers(0, 5))
def test_no_verdict_below_min_samples(n_ref: int, n_cur: int, seed: int) -> None:
    """A reference below min_samples: nothing comparing windows has a verdict; only the
    single-window monitors (performance, concept, bias) may speak, and only with enough rows."""
    signals = check(window(n_ref, seed=seed), window(n_cur, seed=seed + 1))
    assert_contract(signals)
    for x in signals:
        if x.has_verdict:
            assert x.n_current >= SETTINGS.min_samples or x.name.startswith("bias."), x
            assert x.name.split(".")[0] in {"performance", "concept", "bias"}, x
    small = check(window(n_ref, seed=seed), window(min(n_cur, 59), seed=seed + 1))
    assert not [x for x in small if x.has_verdict and not x.name.startswith("bias.")]


def _permute(w: Window, order: np.ndarray) -> Window:
    return dataclasses.replace(
        w,
        texts=tuple(w.texts[i] for i in order),
        probabilities=w.probabilities[order],
        has_prediction=w.has_prediction[order],
        predicted=w.predicted[order],
        y_true=w.y_true[order],
        embeddings=None if w.embeddings is None else w.embeddings[order],
        attributes=tuple(w.attributes[i] for i in order),
    )


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 1000), shift=st.sampled_from([0.0, 0.4]))
def test_verdicts_ignore_row_order(seed: int, shift: float) -> None:
    ref = window(150, seed=seed)
    cur = window(150, seed=seed + 1, embedding_shift=shift, positive_share=0.5 + shift / 2)
    rng = np.random.default_rng(seed)
    base = {x.name: x for x in check(ref, cur)}
    shuffled = {
        x.name: x
        for x in check(_permute(ref, rng.permutation(ref.n)), _permute(cur, rng.permutation(cur.n)))
    }
    assert base.keys() == shuffled.keys()
    for name, x in base.items():
        if name in ORDER_DEPENDENT:
            continue
        y = shuffled[name]
        assert x.status == y.status, name
        if x.value is not None:
            assert y.value is not None and abs(x.value - y.value) < 1e-9, name


def test_nan_probabilities_from_a_broken_adapter() -> None:
    cur = window(200, seed=2)
    broken = dataclasses.replace(cur, probabilities=np.full_like(cur.probabilities, np.nan))
    signals = {x.name: x for x in check(window(200, seed=1), broken)}
    assert_contract(list(signals.values()))
    for name in ("drift.prediction.jsd", "performance.accuracy", "performance.estimated_accuracy"):
        assert signals[name].status is Status.ERROR, name


def test_one_class_and_identical_texts_still_give_defined_signals() -> None:
    rows = records(200, seed=4, positive_share=1.0, error_rate=0.0)
    cur = build_window(rows, LABELS, adapter="v1")
    same_text = dataclasses.replace(cur, texts=("same",) * cur.n)
    signals = check(window(200, seed=1), same_text)
    assert_contract(signals)
    by = {x.name: x for x in signals}
    assert by["drift.text.share"].status is Status.DRIFT
    assert by["drift.prediction.jsd"].status is Status.DRIFT


def test_empty_windows() -> None:
    empty = build_window([], LABELS)
    signals = check(empty, empty)
    assert_contract(signals)
    assert not [x for x in signals if x.has_verdict]
    assert {x.status for x in signals} <= {Status.INSUFFICIENT_DATA, Status.ERROR}
