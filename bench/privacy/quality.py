"""Precision, recall and speed of a detector on the labelled corpus.

A detection counts when it overlaps a planted item of the same kind (span boundaries differ
between tools: a trailing period, a ``tel.`` prefix). ``leaked`` is the share of planted items
not fully covered by detections of any kind: what redaction would let through to the store.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.privacy.corpus import KINDS, Sample

#: text -> (start, end, kind) spans in the corpus's kind names
Detector = Callable[[str], list[tuple[int, int, str]]]


@dataclass(frozen=True, slots=True)
class Score:
    precision: dict[str, float]
    recall: dict[str, float]
    support: dict[str, int]
    leaked: float
    false_positives_on_clean: int
    texts_per_s: float


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def score(detect: Detector, samples: Sequence[Sample]) -> Score:
    started = time.perf_counter()
    found = [detect(sample.text) for sample in samples]
    elapsed = time.perf_counter() - started
    tp_pred: Counter[str] = Counter()
    n_pred: Counter[str] = Counter()
    tp_gold: Counter[str] = Counter()
    n_gold: Counter[str] = Counter()
    leaked = total = clean_fp = 0
    for sample, spans in zip(samples, found, strict=True):
        for start, end, kind in spans:
            n_pred[kind] += 1
            if any(g.kind == kind and start < g.end and g.start < end for g in sample.gold):
                tp_pred[kind] += 1
            if not sample.gold:
                clean_fp += 1
        for g in sample.gold:
            n_gold[g.kind] += 1
            total += 1
            if any(k == g.kind and start < g.end and g.start < end for start, end, k in spans):
                tp_gold[g.kind] += 1
            covered = set()
            for start, end, _ in spans:
                covered.update(range(max(start, g.start), min(end, g.end)))
            # separators at the edges may stay; a digit or letter left is a leak
            left = [c for i, c in enumerate(sample.text[g.start : g.end], g.start)
                    if i not in covered and c.isalnum()]  # fmt: skip
            leaked += bool(left)
    return Score(
        precision={k: _ratio(tp_pred[k], n_pred[k]) for k in KINDS},
        recall={k: _ratio(tp_gold[k], n_gold[k]) for k in KINDS},
        support=dict(n_gold),
        leaked=_ratio(leaked, total),
        false_positives_on_clean=clean_fp,
        texts_per_s=len(samples) / elapsed,
    )


def adaptd_detector() -> Detector:
    from adaptd.privacy.patterns import find

    return lambda text: [(s.start, s.end, s.kind) for s in find(text)]


#: scrubadub's filth types in the corpus's kind names (it has no IP or IBAN detector)
SCRUBADUB_KINDS = {"email": "email", "phone": "phone", "url": "url", "credit_card": "card"}


def scrubadub_detector(locale_of: Callable[[str], str]) -> Detector:
    """scrubadub 2 with its default detectors, told each text's locale (its phone detector
    parses national formats for that region only): its best case."""
    import scrubadub

    scrubbers: dict[str, scrubadub.Scrubber] = {}

    def detect(text: str) -> list[tuple[int, int, str]]:
        locale = locale_of(text)
        if locale not in scrubbers:
            scrubbers[locale] = scrubadub.Scrubber(locale=locale)
        return [
            (f.beg, f.end, SCRUBADUB_KINDS.get(f.type, f.type))
            for f in scrubbers[locale].iter_filth(text)
        ]

    return detect
