"""Counterfactual probe: swap the terms of configured pairs (he/she, his/her, ...) in live texts
and count how often the prediction flips. Needs no labels at all; a fair model flips rarely.

Pure: the caller passes the texts and a ``predict(texts) -> labels`` callable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence

from adaptd.monitoring.detectors.base import CheckContext, error, insufficient, verdict
from adaptd.monitoring.settings import TermPair
from adaptd.signals import Signal

NAME = "bias.counterfactual.flip_rate"
Predict = Callable[[Sequence[str]], Sequence[str]]
#: probed texts needed for a verdict (the probe samples only texts containing a pair term)
MIN_PROBED = 30


def _pattern(pairs: Sequence[TermPair]) -> tuple[re.Pattern[str], dict[str, str]]:
    swap: dict[str, str] = {}
    for pair in pairs:
        swap[pair.a.lower()] = pair.b.lower()
        swap[pair.b.lower()] = pair.a.lower()
    alternatives = "|".join(sorted((re.escape(t) for t in swap), key=len, reverse=True))
    return re.compile(rf"\b({alternatives})\b", re.IGNORECASE), swap


def swap_terms(text: str, pattern: re.Pattern[str], swap: dict[str, str]) -> str:
    """Swap every pair term at once, keeping the capitalisation of the first letter."""

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        other = swap[word.lower()]
        if word.isupper() and len(word) > 1:
            return other.upper()
        return other.capitalize() if word[0].isupper() else other

    return pattern.sub(replace, text)


def flip_rate(
    ctx: CheckContext, texts: Sequence[str | None], predict: Predict | None
) -> list[Signal]:
    pairs = ctx.settings.counterfactual_pairs
    if not pairs:
        return []
    pattern, swap = _pattern(pairs)
    # a sample that depends on the texts only: the same window gives the same probe set
    candidates = sorted(
        {t for t in texts if t and pattern.search(t)},
        key=lambda t: hashlib.blake2b(t.encode(), digest_size=8).digest(),
    )[: ctx.settings.counterfactual_samples]
    n = len(candidates)
    if predict is None:
        return [error(ctx, NAME, "no predict function was given", n_reference=0, n_current=n)]
    if n < MIN_PROBED:
        reason = f"only {n} distinct texts contain a pair term; needs {MIN_PROBED}"
        return [insufficient(ctx, NAME, n_reference=0, n_current=n, reason=reason)]
    swapped = [swap_terms(t, pattern, swap) for t in candidates]
    before = list(predict(candidates))
    after = list(predict(swapped))
    flips = sum(1 for a, b in zip(before, after, strict=True) if a != b)
    rate = flips / n
    return [
        verdict(
            ctx,
            NAME,
            rate,
            drifted=rate > ctx.settings.bias_threshold,
            n_reference=0,
            n_current=n,
            details={"flips": flips, "pairs": [[p.a, p.b] for p in pairs]},
        )
    ]
