from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine

from adaptd.datasets.records import Example
from adaptd.errors import DatasetError
from adaptd.retraining.replay import ReplayStore, read_jsonl, reservoir_update, write_jsonl


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


def test_store_round_trip_and_golden_is_frozen(engine: Engine) -> None:
    store = ReplayStore(engine=engine, capacity=50)
    assert store.load() == ([], 0) and store.golden() is None
    assert store.add(examples("a", 30)) == 30
    assert store.add(examples("b", 30)) == 50
    items, seen = store.load()
    assert seen == 60 and len(items) == 50 and items[0].attributes == {"g": "a"}
    first = store.freeze_golden(examples("g", 40), 10)
    again = store.freeze_golden(examples("other", 40), 10)
    assert [e.text for e in first] == [e.text for e in again]
    assert len(first) == 10


def test_golden_set_grows_by_new_labelled_rows_only(engine: Engine) -> None:
    store = ReplayStore(engine=engine, capacity=50)
    frozen = store.freeze_golden(examples("g", 40), 10)
    unlabelled = Example(text="no label", label=None)
    # the same text as a golden row after normalisation: not a second copy
    again = Example(text=f"  {frozen[0].text.upper()} ", label="negative")
    holdout = [*examples("h", 5), unlabelled, again]
    grown = store.extend_golden(holdout)
    assert [e.text for e in grown] == [*(e.text for e in frozen), "h0", "h1", "h2", "h3", "h4"]
    assert store.golden() == grown
    assert store.extend_golden(examples("h", 5)) == grown  # nothing new: unchanged
    assert store.freeze_golden(examples("other", 40), 10) == grown  # frozen stays frozen


def test_a_second_controller_sees_the_same_sets(engine: Engine) -> None:
    """The sets are the store's, not one controller's: a standby that takes over on another
    host (another ReplayStore, no shared directory) replays and judges with the same ones, and
    two controllers freezing a golden set keep the first one's."""
    leader = ReplayStore(engine=engine, capacity=50)
    leader.add(examples("a", 20))
    golden = leader.freeze_golden(examples("g", 40), 10)
    standby = ReplayStore(engine=engine, capacity=50, seed=7)
    assert [e.text for e in standby.load()[0]] == [e.text for e in leader.load()[0]]
    assert standby.freeze_golden(examples("x", 40), 10) == golden


def test_files_of_earlier_versions_are_imported_once(sqlite_engine: Engine, tmp_path: Path) -> None:
    legacy = tmp_path / "replay"
    write_jsonl(legacy / "reservoir.jsonl", examples("r", 5))
    (legacy / "reservoir.json").write_text('{"seen": 12, "capacity": 50}')
    write_jsonl(legacy / "golden.jsonl", examples("g", 3))
    store = ReplayStore(engine=sqlite_engine, capacity=50, legacy_dir=legacy)
    items, seen = store.load()
    assert [e.text for e in items] == [f"r{i}" for i in range(5)] and seen == 12
    assert [e.text for e in store.golden() or []] == ["g0", "g1", "g2"]
    assert sorted(p.name for p in legacy.iterdir()) == []  # no second copy of the texts left
    assert ReplayStore(engine=sqlite_engine, capacity=50).load() == (items, 12)


def test_scrub_applies_to_what_is_read_back(sqlite_engine: Engine) -> None:
    ReplayStore(engine=sqlite_engine, capacity=50).add(examples("secret", 3))
    scrubbed = ReplayStore(
        engine=sqlite_engine,
        capacity=50,
        scrub=lambda xs: [Example(text="<X>", label=e.label) for e in xs],
    )
    assert {e.text for e in scrubbed.load()[0]} == {"<X>"}


def test_corrupted_reservoir_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "reservoir.jsonl"
    path.write_text('{"text": "ok", "label": "positive"}\n{not json\n')
    with pytest.raises(DatasetError, match=r"reservoir.jsonl:2: invalid JSON"):
        read_jsonl(path)
