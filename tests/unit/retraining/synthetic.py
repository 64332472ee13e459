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
#: a third domain (tests/e2e/test_scale_out swaps domain b's words for these)
POSITIVE_C = ("sunny", "bright", "warm", "golden", "sweet", "merry")
NEGATIVE_C = ("grim", "dull", "stale", "bleak", "sour", "drab")


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


#: The signs a domain's six positive (and six negative) words carry on each earlier domain's
#: axis: three up, three down, so an adapter that learnt only the earlier domains reads the new
#: domain's words at chance, by construction rather than by a random network's leanings.
_EARLIER_AXIS_SIGNS = ((1, -1, 1, -1, 1, -1), (1, 1, -1, -1, 1, -1))


def cued_tiny_model(
    out_dir: Path, *, strength: float = 1.0, noise: float = 0.5, seed: int = 0
) -> Path:
    """A tiny random BERT whose keyword embeddings carry their sentiment on one axis per domain
    (axis 0 for domain a, 1 for b, 2 for c; + for positive words, - for negative, ``strength``),
    and three-up, three-down ``noise`` on every earlier domain's axis.

    On a wholly random BERT, whether a retrain learnt the shifted domain's keywords in a few
    epochs depended on the CPU that ran it (tests/e2e went red on a new CI machine), and how an
    adapter of domain a read domain b's words was the random network's whim (anywhere from 7% to
    80% in trials). With the cue planted, an adapter of domain a reads domain b at about chance,
    and a retrain has a signal to find that no float rounding hides: the tests stay about the
    loop, not about how chaotic a random network's training is.

    The noise is half the cue: at the cue's full size an adapter's retrain on domain c (after
    a and b) had to weigh three axes 1:2:4 and forgot domain a (0.84 on it, rejected by the
    golden gate); at half size the shipped recipe learnt c and kept a and b on base and retrain
    seeds 0-4, and domain a's adapter still read b at chance (0.55-0.58).
    """
    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    from adaptd.modeling.tiny import build_tiny_model

    build_tiny_model(out_dir, hidden=32, layers=2, seed=seed)
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    weights_file = out_dir / "model.safetensors"
    weights = load_file(str(weights_file))
    embeddings = weights["embeddings.word_embeddings.weight"]
    domains = ((POSITIVE, NEGATIVE), (POSITIVE_B, NEGATIVE_B), (POSITIVE_C, NEGATIVE_C))
    for axis, (positive, negative) in enumerate(domains):
        for sign, words in ((1.0, positive), (-1.0, negative)):
            for i, word in enumerate(words):
                for token in tokenizer(word, add_special_tokens=False)["input_ids"]:
                    embeddings[token, axis] = sign * strength
                    for earlier in range(axis):
                        embeddings[token, earlier] = _EARLIER_AXIS_SIGNS[earlier][i] * noise
    save_file(weights, str(weights_file), metadata={"format": "pt"})
    return out_dir
