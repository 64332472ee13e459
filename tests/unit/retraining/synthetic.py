"""A keyword sentiment task a tiny random BERT learns in a few seconds, and a tiny base model."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from adaptd.datasets.records import Example

POSITIVE = ("good", "great", "fine", "happy", "love", "nice")
NEGATIVE = ("bad", "awful", "poor", "sad", "hate", "ugly")
FILLER = ("the", "movie", "day", "food", "was", "really", "today", "this", "my", "a", "very")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def keyword_examples(
    n: int, seed: int = 0, *, start: datetime = T0, domain: str = "a", noise: float = 0.0
) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = ("negative", "positive")[rng.randrange(2)]
        word = rng.choice(POSITIVE if label == "positive" else NEGATIVE)
        words = [rng.choice(FILLER) for _ in range(rng.randrange(3, 9))]
        words.insert(rng.randrange(len(words) + 1), word)
        if domain != "a":
            words.append(domain)
        if rng.random() < noise:
            label = ("negative", "positive")[rng.randrange(2)]
        out.append(
            Example(
                text=" ".join(words) + f" {i}",
                label=label,
                attributes={"gender": ("male", "female")[i % 2]},
                timestamp=start + timedelta(seconds=i),
            )
        )
    return out
