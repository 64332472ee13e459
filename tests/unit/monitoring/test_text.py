from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adaptd.datasets.descriptors import descriptors, oov_shares
from adaptd.datasets.records import Example
from adaptd.monitoring.detectors.text import text_drift
from adaptd.monitoring.windows import build_window
from adaptd.signals import Status
from tests.unit.monitoring.factory import LABELS, by_name, context, window


def fake_tokenizer(texts: Sequence[str]) -> list[list[str]]:
    """Words in a small vocabulary are one piece; others split into two, the second a '##' piece."""
    vocab = {"the", "film", "was", "good", "bad"}
    out = []
    for t in texts:
        pieces: list[str] = []
        for w in t.lower().split():
            pieces += [w] if w in vocab else [w[:2], "##" + w[2:]] if len(w) > 2 else ["[UNK]"]
        out.append(pieces)
    return out


def test_descriptors_of_known_texts() -> None:
    d = descriptors(["Hello, World 42", "", "lol @user #tag"], fake_tokenizer)
    assert list(d["length"]) == [15, 0, 14]
    assert list(d["word_count"]) == [3, 0, 3]
    assert d["non_alpha_share"][0] == pytest.approx(3 / 15)  # "," "4" "2"
    assert d["upper_share"][0] == pytest.approx(2 / 10)
    assert d["url_share"][2] == pytest.approx(2 / 3)
    assert d["non_alpha_share"][1] == 0.0  # empty text: defined, not NaN


def test_oov_share_counts_unknown_and_continuation_pieces() -> None:
    shares = oov_shares(["the film was good", "the cinematography x"], fake_tokenizer)
    assert shares[0] == 0.0
    assert shares[1] == pytest.approx(2 / 4)  # the | ci ##nematography | [UNK]


def test_tweets_drift_from_movie_reviews_golden() -> None:
    ctx = context()
    signals = by_name(
        text_drift(ctx, window(600, seed=1), window(600, seed=2, tweet_share=0.8), fake_tokenizer)
    )
    assert signals["drift.text.share"].status is Status.DRIFT
    assert signals["drift.text.url_share"].status is Status.DRIFT
    assert signals["drift.text.share"].details["tested"] == 6
    stable = by_name(text_drift(ctx, window(600, seed=1), window(600, seed=3), fake_tokenizer))
    assert stable["drift.text.share"].status is Status.OK
    assert stable["drift.text.share"].value == 0.0


def test_no_tokenizer_is_an_error_on_oov_not_a_silent_pass() -> None:
    signals = by_name(text_drift(context(), window(300, seed=1), window(300, seed=2)))
    assert signals["drift.text.oov_share"].status is Status.ERROR
    assert "tokenizer" in signals["drift.text.oov_share"].details["reason"]
    assert signals["drift.text.share"].details["tested"] == 5


def test_all_identical_texts_are_drift_not_silence() -> None:
    same = build_window([Example(text="same text", label="positive")] * 300, LABELS)
    signals = by_name(text_drift(context(), window(300, seed=1), same))
    assert signals["drift.text.share"].status is Status.DRIFT
    assert signals["drift.text.share"].details["distinct_current_texts"] == 1


def test_below_min_samples_no_verdict() -> None:
    signals = text_drift(context(min_samples=500), window(300, seed=1), window(600, seed=2))
    assert {s.status for s in signals} == {Status.INSUFFICIENT_DATA}
    assert all(s.value is None and s.n_reference == 300 for s in signals)


def test_an_empty_window_never_reaches_the_tokenizer() -> None:
    # A Hugging Face tokenizer fails on an empty batch (IndexError); an empty window at start-up
    # or a window of hashed rows without texts must read "insufficient", not "error".
    def strict(texts: Sequence[str]) -> list[list[str]]:
        if not texts:
            raise IndexError("list index out of range")
        return [t.split() for t in texts]

    empty = build_window([], LABELS)
    signals = text_drift(context(), empty, window(600, seed=2), strict)
    assert {s.status for s in signals} == {Status.INSUFFICIENT_DATA}


def test_statistic_value_is_normed_wasserstein_of_the_descriptor() -> None:
    ref, cur = window(1200, seed=1), window(1200, seed=2, tweet_share=0.5)
    s = by_name(text_drift(context(), ref, cur))["drift.text.length"]
    lengths_ref = descriptors(ref.text_list())["length"]
    assert s.details["method"] == "wasserstein"  # > 1000 reference rows: Evidently's rule
    assert s.value is not None and s.value >= 0
    assert s.details["reference_mean"] == pytest.approx(float(np.mean(lengths_ref)))


def _slow_descriptors(t: str) -> tuple[float, float, float, float]:
    letters = sum(c.isalpha() for c in t)
    other = sum(not c.isalpha() and not c.isspace() for c in t)
    upper = sum(c.isalpha() and c.isupper() for c in t)
    return (
        float(len(t.split())),
        other / len(t) if t else 0.0,
        upper / letters if letters else 0.0,
        float(len(t)),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=12))
def test_vectorised_descriptors_match_a_per_text_reading(texts: list[str]) -> None:
    d = descriptors(texts)
    for i, t in enumerate(texts):
        words, non_alpha, upper, length = _slow_descriptors(t)
        assert d["word_count"][i] == words, t
        assert d["non_alpha_share"][i] == pytest.approx(non_alpha), t
        assert d["upper_share"][i] == pytest.approx(upper), t
        assert d["length"][i] == length
