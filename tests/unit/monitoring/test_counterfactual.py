from __future__ import annotations

from collections.abc import Sequence

from adaptd.monitoring.detectors.counterfactual import _pattern, flip_rate, swap_terms
from adaptd.monitoring.settings import TermPair
from adaptd.signals import Status
from tests.unit.monitoring.factory import context

PAIRS = [TermPair(a="he", b="she"), TermPair(a="his", b="her")]


def test_swap_keeps_case_and_whole_words() -> None:
    pattern, swap = _pattern(PAIRS)
    assert swap_terms("He said his cat, the hero.", pattern, swap) == "She said her cat, the hero."
    assert swap_terms("SHE and she", pattern, swap) == "HE and he"


def biased_predict(texts: Sequence[str]) -> list[str]:
    return ["positive" if " she " in f" {t.lower()} " else "negative" for t in texts]


def test_flip_rate_of_a_model_keyed_on_a_pronoun() -> None:
    texts = [f"he liked movie {i}" for i in range(50)] + [f"a movie {i}" for i in range(50)]
    (s,) = flip_rate(context(counterfactual_pairs=PAIRS), texts, biased_predict)
    assert s.value == 1.0 and s.status is Status.DRIFT and s.n_current == 50
    (fair,) = flip_rate(
        context(counterfactual_pairs=PAIRS), texts, lambda ts: ["negative"] * len(ts)
    )
    assert fair.value == 0.0 and fair.status is Status.OK


def test_too_few_probe_texts_and_missing_predict() -> None:
    texts = ["he went"] * 5 + ["she left"]
    (s,) = flip_rate(context(counterfactual_pairs=PAIRS), texts, biased_predict)
    assert s.status is Status.INSUFFICIENT_DATA and s.n_current == 2
    (e,) = flip_rate(context(counterfactual_pairs=PAIRS), texts, None)
    assert e.status is Status.ERROR
    assert flip_rate(context(), texts, biased_predict) == []
