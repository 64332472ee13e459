"""The demo's shifts keep their held-out rows apart from everything the daemon is given."""

from __future__ import annotations

import pytest

from adaptd.datasets.records import Example
from adaptd.demo.shifts import SHIFTS, Shift, tweets_to_movies
from adaptd.retraining.dataset import text_key


def _keys(rows: tuple[Example, ...]) -> set[str]:
    return {text_key(e.text) for e in rows}


def _given(shift: Shift) -> set[str]:
    return _keys(shift.source_train) | _keys(shift.source_live) | _keys(shift.target_live)


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_no_held_out_text_is_given_to_the_daemon(name: str, quick: bool) -> None:
    # The packaged data repeats a few texts: before apart(), the full tweets-to-movies pool
    # held 2 of its held-out snippets and movies-to-tweets 1 of its held-out tweets.
    shift = SHIFTS[name](quick=quick)
    held = _keys(shift.source_holdout) | _keys(shift.target_holdout)
    assert _given(shift) and not _given(shift) & held


def test_a_larger_pool_still_stops_short_of_the_held_out_snippets() -> None:
    default = tweets_to_movies()
    larger = tweets_to_movies(n_live=2 * len(default.target_live))
    assert len(larger.target_live) == 2 * len(default.target_live)
    assert not _keys(larger.target_live) & _keys(larger.target_holdout)
    with pytest.raises(ValueError, match=r"must be 1 to \d+ \(the packaged \d+ less the 1000"):
        tweets_to_movies(n_live=100_000)
    with pytest.raises(ValueError, match="a live pool of 0 movie snippets"):
        tweets_to_movies(n_live=0)
