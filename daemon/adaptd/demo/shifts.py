"""Real domain shifts from the packaged data: what the demo and ``bench/adaptation`` replay.

A shift is a source domain the first adapter is trained on, live traffic from that domain, then
live traffic from a target domain, and held-out rows of both that nothing ever trains on. The
splits are seeded, so the demo, the tests and the benchmark see the same rows.

- ``tweets-to-movies`` (the demo's): an adapter trained on labelled tweets meets Rotten Tomatoes
  critic snippets. The snippets are terser and more ironic than tweets: measured with frozen
  MiniLM features, accuracy falls from 82% on tweets to 65% on snippets, so the loop has
  something to recover.
- ``movies-to-tweets``: the other direction. MiniLM's sentiment transfers to tweets (the
  movie-trained adapter scores about as well on tweets as on snippets): a shift in the inputs
  more than in accuracy, the case where the gates must not promote a candidate for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from adaptd.datasets import demo as data
from adaptd.datasets.records import Example
from adaptd.retraining.dataset import text_key


@dataclass(frozen=True, slots=True, kw_only=True)
class Shift:
    name: str
    source: str
    target: str
    #: the first adapter's training data
    source_train: tuple[Example, ...]
    #: live source traffic before the shift (with feedback)
    source_live: tuple[Example, ...]
    source_holdout: tuple[Example, ...]
    #: live target traffic after the shift, a pool the stream draws from
    target_live: tuple[Example, ...]
    target_holdout: tuple[Example, ...]

    def sizes(self) -> dict[str, int]:
        return {
            "source_train": len(self.source_train),
            "source_live": len(self.source_live),
            "source_holdout": len(self.source_holdout),
            "target_live": len(self.target_live),
            "target_holdout": len(self.target_holdout),
        }


def apart(rows: Sequence[Example], held_out: Sequence[Example]) -> tuple[Example, ...]:
    """``rows`` without the texts of ``held_out``. The packaged sets repeat a few texts (56 of
    12,808 movie snippets, some tweets): a repeat on both sides would be a held-out row that
    something trained on."""
    held = {text_key(e.text) for e in held_out}
    return tuple(e for e in rows if text_key(e.text) not in held)


#: movie snippets in the full tweets-to-movies live pool (the quick one has 700)
TWEETS_TO_MOVIES_LIVE = 2400


def tweets_to_movies(*, quick: bool = False, n_live: int | None = None) -> Shift:
    """``n_live``: movie snippets in the live pool (default 700 quick, 2,400 full)."""
    # 543 labelled tweets in all: most go to training the first adapter, a quarter is held out.
    tweets = data.tweets()
    train, live, holdout = data.split(tweets, (0.6, 0.15, 0.25), seed=11)
    movies = data.rotten_tomatoes()
    default_live, n_holdout = (700, 300) if quick else (TWEETS_TO_MOVIES_LIVE, 1000)
    n_live = default_live if n_live is None else n_live
    target_holdout = movies[-n_holdout:]
    # The pool is cut from the front, the held-out rows from the back, and no pool row may
    # repeat a held-out text: the daemon gets the pool's labels as feedback.
    pool = apart(movies[:-n_holdout], target_holdout)
    if not 0 < n_live <= len(pool):
        raise ValueError(
            f"a live pool of {n_live} movie snippets: must be 1 to {len(pool)} (the packaged "
            f"{len(movies)} less the {n_holdout} held out and their repeats)"
        )
    return Shift(
        name="tweets-to-movies",
        source="tweets",
        target="movies",
        source_train=apart(train, holdout),
        source_live=apart(live, holdout),
        source_holdout=tuple(holdout),
        target_live=pool[:n_live],
        target_holdout=tuple(target_holdout),
    )


def movies_to_tweets(*, quick: bool = False) -> Shift:
    movies = data.rotten_tomatoes()
    n_train, n_live, n_holdout = (600, 200, 300) if quick else (1500, 400, 1000)
    tweets = data.tweets()
    live, holdout = data.split(tweets, (0.7, 0.3), seed=12)
    source_holdout = movies[-n_holdout:]
    return Shift(
        name="movies-to-tweets",
        source="movies",
        target="tweets",
        source_train=apart(movies[:n_train], source_holdout),
        source_live=apart(movies[n_train : n_train + n_live], source_holdout),
        source_holdout=tuple(source_holdout),
        target_live=apart(live, holdout),
        target_holdout=tuple(holdout),
    )


SHIFTS: dict[str, Callable[..., Shift]] = {
    "tweets-to-movies": tweets_to_movies,
    "movies-to-tweets": movies_to_tweets,
}
