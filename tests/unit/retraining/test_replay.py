from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from adaptd.datasets.records import Example
from adaptd.errors import DatasetError
from adaptd.retraining.replay import ReplayStore, read_jsonl, reservoir_update


def examples(prefix: str, n: int) -> list[Example]:
    return [Example(text=f"{prefix}{i}", label="positive", attributes={"g": "a"}) for i in range(n)]


def test_reservoir_keeps_capacity_and_counts_everything_offered() -> None:
    kept, seen = reservoir_update([], 0, examples("a", 1000), 100, random.Random(0))
    assert len(kept) == 100 and seen == 1000


def test_reservoir_is_uniform_across_runs() -> None:
    # Two training sets of equal size offered one after the other: each should hold about half.
    shares = []
    for seed in range(30):
        kept, seen = reservoir_update([], 0, examples("first", 500), 100, random.Random(seed))
        kept, seen = reservoir_update(
            kept, seen, examples("second", 500), 100, random.Random(seed + 99)
        )
        shares.append(Counter(e.text.startswith("first") for e in kept)[True] / 100)
    assert 0.4 < sum(shares) / len(shares) < 0.6


def test_store_round_trip_and_golden_is_frozen(tmp_path: Path) -> None:
    store = ReplayStore(directory=tmp_path / "replay", capacity=50)
    assert store.load() == ([], 0)
    assert store.add(examples("a", 30)) == 30
    assert store.add(examples("b", 30)) == 50
    items, seen = store.load()
    assert seen == 60 and len(items) == 50 and items[0].attributes == {"g": "a"}
    first = store.freeze_golden(examples("g", 40), 10)
    again = store.freeze_golden(examples("other", 40), 10)
    assert [e.text for e in first] == [e.text for e in again]
    assert len(first) == 10


def test_corrupted_reservoir_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "reservoir.jsonl"
    path.write_text('{"text": "ok", "label": "positive"}\n{not json\n')
    with pytest.raises(DatasetError, match=r"reservoir.jsonl:2: invalid JSON"):
        read_jsonl(path)
