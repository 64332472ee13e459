"""A keyword sentiment task a tiny random BERT learns in a few seconds, and a tiny base model."""

from __future__ import annotations

import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from adaptd.datasets.records import Example

POSITIVE = ("good", "great", "fine", "happy", "love", "nice")
NEGATIVE = ("bad", "awful", "poor", "sad", "hate", "ugly")
FILLER = ("the", "movie", "day", "food", "was", "really", "today", "this", "my", "a", "very")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


#: the shifted domain: other words carry the sentiment
POSITIVE_B = ("cool", "wow", "yay", "best", "lovely", "super")
NEGATIVE_B = ("meh", "ugh", "worst", "boring", "lame", "nope")


def keyword_examples(
    n: int, seed: int = 0, *, start: datetime = T0, domain: str = "a", noise: float = 0.0
) -> list[Example]:
    """Label from a sentiment keyword; ``noise`` is the share of labels drawn at random."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = ("negative", "positive")[rng.randrange(2)]
        positive, negative = (POSITIVE, NEGATIVE) if domain == "a" else (POSITIVE_B, NEGATIVE_B)
        word = rng.choice(positive if label == "positive" else negative)
        words = [rng.choice(FILLER) for _ in range(rng.randrange(3, 9))]
        words.insert(rng.randrange(len(words) + 1), word)
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


def sentence_encoder_copy(base: Path, dest: Path) -> Path:
    """``base`` laid out as a sentence-transformers directory (the shipped MiniLM's layout: a
    ``modules.json`` naming a mean Pooling module), where the recipe's sentence-encoder choices
    (the contrastive stage, a fresh LoRA on retrains, the warm probe's guard) apply."""
    shutil.copytree(base, dest)
    (dest / "1_Pooling").mkdir()
    (dest / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    modules = [{"idx": 1, "name": "1", "path": "1_Pooling", "type": "x.models.Pooling"}]
    (dest / "modules.json").write_text(json.dumps(modules))
    return dest
