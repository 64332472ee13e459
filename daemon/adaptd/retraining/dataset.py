"""Training data for one retrain: new labels from the window, replayed earlier data, a holdout.

Pure: the caller passes the labelled examples (from the store or a file) and the replay sample;
nothing here reads the clock, the store or the disk.

- The newest labelled examples (by timestamp) are held out for validation: the candidate is
  judged on the traffic it will serve next, not on a random slice of what it trained on.
- Replay mixes in earlier training data (d'Autume et al. 2019; Araujo et al.: a uniform random
  reservoir is as good as clever selection) so the adapter does not forget the old domain.
- Duplicates (same text after normalisation) are dropped; a new label wins over a replayed one,
  and nothing held out appears in training.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from adaptd.datasets.records import Example
from adaptd.errors import AdaptdError

_SPACES = re.compile(r"\s+")
_EPOCH = datetime.min.replace(tzinfo=UTC)


class RetrainRejected(AdaptdError):
    """The data cannot make a trustworthy retrain (too few labels, one class, unknown labels)."""


def text_key(text: str) -> str:
    """Identity of a text for deduplication: case- and whitespace-insensitive hash."""
    normal = _SPACES.sub(" ", text.strip().lower())
    return hashlib.sha256(normal.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, slots=True, kw_only=True)
class AssemblySpec:
    labels: tuple[str, ...]
    min_labels: int = 50
    holdout_fraction: float = 0.2
    min_holdout: int = 20
    replay_ratio: float = 1.0
    balance: Literal["none", "reweight", "oversample"] = "reweight"
    group_attributes: tuple[str, ...] = ()
    #: validate on training data when there is no holdout (first adapter from a small file)
    seed: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class TrainingSet:
    train: tuple[Example, ...]
    #: loss weight per training example (mean 1)
    weights: tuple[float, ...]
    holdout: tuple[Example, ...]
    n_new: int
    n_replay: int
    n_duplicates: int
    window: dict[str, str | None] = field(default_factory=dict)
    #: per training example: replayed from earlier data (True) or one of the new labels
    replayed: tuple[bool, ...] = ()

    def summary(self) -> dict[str, object]:
        return {
            "train": len(self.train),
            "holdout": len(self.holdout),
            "new": self.n_new,
            "replay": self.n_replay,
            "duplicates_dropped": self.n_duplicates,
            "classes": dict(Counter(e.label or "" for e in self.train)),
            "window": self.window,
        }


def check_labels(examples: Sequence[Example], spec: AssemblySpec) -> None:
    """Raise :class:`RetrainRejected` naming what is wrong with the labels."""
    unknown = Counter(e.label for e in examples if e.label not in spec.labels)
    if unknown:
        label, count = unknown.most_common(1)[0]
        raise RetrainRejected(
            f"label {label!r} ({count} example{'s' if count != 1 else ''}) is not one of "
            f"{list(spec.labels)}"
        )
    if len(examples) < spec.min_labels:
        raise RetrainRejected(
            f"only {len(examples)} labelled examples, a retrain needs at least {spec.min_labels}"
        )
    classes = Counter(e.label for e in examples)
    if len(classes) < 2:
        label = next(iter(classes))
        raise RetrainRejected(
            f"all {len(examples)} labelled examples are {label!r}; a retrain needs at least "
            "two classes"
        )


def _dedupe(examples: Sequence[Example], seen: set[str]) -> tuple[list[Example], int]:
    """Keep the last occurrence of each text not in ``seen`` (the newest label wins)."""
    latest: dict[str, Example] = {}
    dropped = 0
    for example in examples:
        key = text_key(example.text)
        if key in seen:
            dropped += 1
            continue
        if key in latest:
            dropped += 1
            del latest[key]  # re-insert so order follows the newest occurrence
        latest[key] = example
    seen.update(latest)
    return list(latest.values()), dropped


def _balanced_weights(
    examples: Sequence[Example], spec: AssemblySpec
) -> tuple[list[Example], list[float]]:
    items = list(examples)
    weights = [1.0] * len(items)
    if spec.balance == "oversample":
        rng = random.Random(spec.seed)
        by_class: dict[str, list[Example]] = {}
        for e in items:
            by_class.setdefault(e.label or "", []).append(e)
        largest = max(len(v) for v in by_class.values())
        for members in by_class.values():
            items.extend(rng.choices(members, k=largest - len(members)))
        weights = [1.0] * len(items)
    elif spec.balance == "reweight":
        counts = Counter(e.label for e in items)
        k = len(counts)
        weights = [len(items) / (k * counts[e.label]) for e in items]
    for attribute in spec.group_attributes:
        groups = Counter(e.attributes.get(attribute) for e in items)
        present = {g: n for g, n in groups.items() if g is not None}
        if len(present) < 2:
            continue
        with_group = sum(present.values())
        # Up-weight under-served groups; examples without the attribute keep their weight.
        weights = [
            w
            * (
                with_group / (len(present) * present[g])
                if (g := e.attributes.get(attribute)) in present
                else 1.0
            )
            for e, w in zip(items, weights, strict=True)
        ]
    mean = sum(weights) / len(weights)
    return items, [w / mean for w in weights]


def split_holdout(
    examples: Sequence[Example],
    spec: AssemblySpec,
    *,
    eligible: Callable[[Example], bool] = lambda e: True,
) -> tuple[list[Example], list[Example]]:
    """Oldest part for training, newest part held out (by timestamp, stable for ties); only
    ``eligible`` examples may be held out (the others train)."""
    ordered = sorted(examples, key=lambda e: e.timestamp or _EPOCH)
    n_holdout = max(spec.min_holdout, round(spec.holdout_fraction * len(ordered)))
    n_holdout = min(n_holdout, len(ordered) - 2)
    if n_holdout < 1:
        raise RetrainRejected(
            f"only {len(ordered)} labelled examples: nothing left to hold out for validation"
        )
    held: set[int] = set()
    for i in range(len(ordered) - 1, -1, -1):
        if len(held) == n_holdout:
            break
        if eligible(ordered[i]):
            held.add(i)
    if not held:
        raise RetrainRejected(
            f"none of the {len(ordered)} labelled examples is new to the active adapter (all "
            "fall in the window it was trained on or in its replay data): nothing to validate on"
        )
    train = [e for i, e in enumerate(ordered) if i not in held]
    return train, [e for i, e in enumerate(ordered) if i in held]


def assemble(
    labelled: Sequence[Example],
    replay: Sequence[Example],
    spec: AssemblySpec,
    *,
    exclude: Sequence[Example] = (),
    champion_trained: Sequence[Example] = (),
    champion_until: datetime | None = None,
) -> TrainingSet:
    """Build the training set and the holdout; :class:`RetrainRejected` says why it cannot.

    ``exclude`` (the golden set) never enters training, so it keeps measuring forgetting. The
    holdout is data neither model trained on: the candidate never sees it (nor its duplicates
    in the replay sample), and rows the champion may have trained on (``champion_trained``, its
    replay data, and anything stamped up to ``champion_until``, the end of its data window) are
    not held out, or the champion would be judged on its own training data.
    """
    check_labels(labelled, spec)
    excluded = {text_key(e.text) for e in exclude}
    seen: set[str] = set(excluded)
    unique, duplicates = _dedupe(labelled, seen)
    check_labels(unique, spec)
    seen_by_champion = {text_key(e.text) for e in champion_trained}

    def eligible(e: Example) -> bool:
        if text_key(e.text) in seen_by_champion:
            return False
        return champion_until is None or e.timestamp is None or e.timestamp > champion_until

    train_new, holdout = split_holdout(unique, spec, eligible=eligible)
    if len({e.label for e in train_new}) < 2:
        raise RetrainRejected(
            f"the {len(train_new)} training examples left after holding out the newest "
            f"{len(holdout)} have a single class"
        )
    rng = random.Random(spec.seed)
    valid_replay = [e for e in replay if e.label in spec.labels]
    k = min(len(valid_replay), round(spec.replay_ratio * len(train_new)))
    sampled = rng.sample(valid_replay, k) if k else []
    holdout_keys = {text_key(e.text) for e in holdout}
    seen = holdout_keys | excluded
    train_new, dropped_new = _dedupe(train_new, seen)
    replayed, dropped_replay = _dedupe(sampled, seen)
    items, weights = _balanced_weights(train_new + replayed, spec)
    # new and replayed texts are disjoint after _dedupe, so the text identifies the origin
    # (also of the copies oversampling adds)
    replayed_keys = {text_key(e.text) for e in replayed}
    origin = [text_key(e.text) in replayed_keys for e in items]
    order = list(range(len(items)))
    rng.shuffle(order)
    stamps = [e.timestamp for e in unique if e.timestamp is not None]
    return TrainingSet(
        train=tuple(items[i] for i in order),
        weights=tuple(weights[i] for i in order),
        holdout=tuple(holdout),
        n_new=len(train_new),
        n_replay=len(replayed),
        n_duplicates=duplicates + dropped_new + dropped_replay,
        replayed=tuple(origin[i] for i in order),
        window={
            "since": min(stamps).isoformat() if stamps else None,
            "until": max(stamps).isoformat() if stamps else None,
        },
    )


def late_holdout(
    late: Sequence[Example],
    training: TrainingSet,
    spec: AssemblySpec,
    *,
    limit: int,
    exclude: Sequence[Example] = (),
    champion_trained: Sequence[Example] = (),
    champion_until: datetime | None = None,
) -> tuple[Example, ...]:
    """Labels that arrived after the run's data snapshot, usable to judge its candidate: what
    neither model trained on, like the holdout (no text the candidate trained on or already
    holds out, nothing in ``exclude`` (the golden set), nothing the champion trained on), with
    a known label. The newest label of a text wins; at most ``limit`` rows, the newest first
    (in time order)."""
    taken = {text_key(e.text) for e in (*training.train, *training.holdout, *exclude)}
    taken |= {text_key(e.text) for e in champion_trained}
    fresh = [
        e
        for e in late
        if e.label in spec.labels
        and (champion_until is None or e.timestamp is None or e.timestamp > champion_until)
    ]
    unique, _ = _dedupe(fresh, taken)
    ordered = sorted(unique, key=lambda e: e.timestamp or _EPOCH)
    return tuple(ordered[-limit:]) if limit > 0 else ()
