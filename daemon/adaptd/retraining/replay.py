"""The replay reservoir and the frozen golden set, kept in the store (table ``replay_sets``).

The reservoir is a uniform random sample (Vitter's algorithm R) of every training set so far:
each example ever offered has the same chance of being kept, whatever the order of the runs.
The golden set is frozen from the first training data and grows once, when the first adapter is
validated, by that adapter's holdout: rows of the source domain that it never trained on and that
no later run may train on, so the golden gate judges forgetting on about three times as many
rows (bench/adaptation/RESULTS.md, run 5). From then on it never changes, so "accuracy on golden"
means the same thing for every candidate judged against a champion.

Both live in the store, not under a controller's ``state_dir``: a standby controller on another
host that takes over replays the same examples and judges on the same golden set (with them in
files, it had neither, and its gates blocked on an unjudged golden slice). Each set is replaced
in one transaction, so a crash mid-write leaves the previous one. Sets that earlier versions
left as ``<state_dir>/replay/*.jsonl`` are imported at first use and the files removed.
"""

from __future__ import annotations

import json
import logging
import os
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from adaptd.datasets.records import Example
from adaptd.errors import DatasetError
from adaptd.retraining.dataset import text_key
from adaptd.storage import repository as repo

logger = logging.getLogger(__name__)

RESERVOIR_FILE = "reservoir.jsonl"
RESERVOIR_META = "reservoir.json"
GOLDEN_FILE = "golden.jsonl"


def example_to_dict(example: Example) -> dict[str, Any]:
    return {
        "text": example.text,
        "label": example.label,
        "attributes": example.attributes,
        "timestamp": example.timestamp.isoformat() if example.timestamp else None,
    }


def example_from_dict(data: dict[str, Any], where: str) -> Example:
    text = data.get("text")
    if not isinstance(text, str) or not text:
        raise DatasetError(f"{where}: 'text' is missing or empty")
    stamp = data.get("timestamp")
    try:
        ts = datetime.fromisoformat(stamp) if isinstance(stamp, str) else None
    except ValueError as e:
        raise DatasetError(f"{where}: timestamp {stamp!r} is not ISO 8601") from e
    attributes = data.get("attributes") or {}
    return Example(
        text=text,
        label=None if data.get("label") is None else str(data["label"]),
        attributes={str(k): str(v) for k, v in attributes.items()},
        timestamp=ts,
    )


def write_jsonl(path: Path, examples: Iterable[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        for e in examples:
            f.write(json.dumps(example_to_dict(e), ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def read_jsonl(path: Path) -> list[Example]:
    out: list[Example] = []
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{number}"
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{where}: invalid JSON: {e.msg}") from e
                if not isinstance(data, dict):
                    raise DatasetError(f"{where}: each line must be a JSON object")
                out.append(example_from_dict(data, where))
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read: {e}") from e
    return out


def reservoir_update(
    items: Sequence[Example],
    seen: int,
    offered: Iterable[Example],
    capacity: int,
    rng: random.Random,
) -> tuple[list[Example], int]:
    """Algorithm R: after it, every example offered so far is kept with probability
    ``capacity / seen``. Pure: returns the new items and count."""
    kept = list(items)
    for example in offered:
        seen += 1
        if len(kept) < capacity:
            kept.append(example)
        else:
            slot = rng.randrange(seen)
            if slot < capacity:
                kept[slot] = example
    return kept, seen


#: the two replay sets' names in the store
RESERVOIR = "reservoir"
GOLDEN = "golden"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayStore:
    """The replay reservoir and golden set of the store every controller shares."""

    engine: Engine
    capacity: int
    seed: int = 0
    #: what may be kept of examples read back (privacy.text): a reservoir written before the
    #: mode changed is rewritten redacted on the next add, and never trained on unredacted
    scrub: Callable[[Sequence[Example]], list[Example]] | None = None
    #: ``<state_dir>/replay`` of versions that kept the sets in files: imported once, then gone
    legacy_dir: Path | None = None

    def _stored(self, name: str) -> tuple[list[Example], int] | None:
        stored = repo.replay_set(self.engine, name)
        if stored is None:
            stored = self._import_legacy(name)
        if stored is None:
            return None
        data, seen = stored
        return self._examples(name, data), seen

    def _examples(self, name: str, data: Sequence[dict[str, Any]]) -> list[Example]:
        items = [
            example_from_dict(d, f"replay set {name!r}, example {i}") for i, d in enumerate(data)
        ]
        return self.scrub(items) if self.scrub is not None else items

    def _import_legacy(self, name: str) -> tuple[list[dict[str, Any]], int] | None:
        if self.legacy_dir is None:
            return None
        path = self.legacy_dir / (RESERVOIR_FILE if name == RESERVOIR else GOLDEN_FILE)
        if not path.is_file():
            return None
        items = read_jsonl(path)
        seen = len(items)
        meta = self.legacy_dir / RESERVOIR_META
        if name == RESERVOIR and meta.is_file():
            try:
                seen = max(seen, int(json.loads(meta.read_text(encoding="utf-8"))["seen"]))
            except (OSError, ValueError, KeyError, TypeError):
                logger.warning("%s: unreadable; counting the reservoir from its size", meta)
        stored = repo.add_replay_set_once(
            self.engine, name, [example_to_dict(e) for e in items], seen
        )
        for leftover in (path, meta if name == RESERVOIR else None):
            if leftover is not None:
                leftover.unlink(missing_ok=True)
        logger.info("imported %d %s examples from %s into the store", len(items), name, path)
        return stored, seen

    def load(self) -> tuple[list[Example], int]:
        stored = self._stored(RESERVOIR)
        if stored is None:
            return [], 0
        items, seen = stored
        return items, max(seen, len(items))

    def add(self, examples: Sequence[Example]) -> int:
        """Offer a training set to the reservoir; returns the reservoir size. Only the
        controller holding the retrain lock adds, so read-then-replace does not race."""
        items, seen = self.load()
        rng = random.Random(self.seed + seen)
        kept, seen = reservoir_update(items, seen, examples, self.capacity, rng)
        with self.engine.begin() as conn:
            repo.put_replay_set(conn, RESERVOIR, [example_to_dict(e) for e in kept], seen)
        return len(kept)

    def golden(self) -> list[Example] | None:
        stored = self._stored(GOLDEN)
        return None if stored is None else stored[0]

    def freeze_golden(self, examples: Sequence[Example], size: int) -> list[Example]:
        """The golden set: written once from ``examples``, returned as stored from then on."""
        existing = self.golden()
        if existing is not None:
            return existing
        labelled = [e for e in examples if e.label is not None]
        sample = random.Random(self.seed).sample(labelled, min(size, len(labelled)))
        data = [example_to_dict(e) for e in sample]
        # Another controller may have frozen one first: the one stored is the golden set.
        stored = repo.add_replay_set_once(self.engine, GOLDEN, data, len(data))
        return self._examples(GOLDEN, stored)

    def extend_golden(self, examples: Sequence[Example]) -> list[Example]:
        """Add ``examples`` (the first adapter's holdout) to the golden set; returns it. Only the
        controller holding the retrain lock extends, so read-then-replace does not race."""
        existing = self.golden() or []
        keys = {text_key(e.text) for e in existing}
        added = []
        for e in examples:
            if e.label is not None and text_key(e.text) not in keys:
                keys.add(text_key(e.text))
                added.append(e)
        if not added:
            return existing
        golden = [*existing, *added]
        with self.engine.begin() as conn:
            repo.put_replay_set(conn, GOLDEN, [example_to_dict(e) for e in golden], len(golden))
        return golden
