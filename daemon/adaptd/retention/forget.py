"""Forgetting: delete a person's rows from every place adaptd keeps texts or labels.

The places: the store (predictions, their feedback, the monitors' reference rows, lineage
rows), the replay reservoir and the golden set (``state_dir/replay``), and the directories of
failed runs (``state_dir/runs``, whose training files hold texts). A person is named by
prediction ids or by an attribute value; their texts then identify them everywhere else, since
the files hold texts and attributes but no ids.

Order: plan everything first, then rewrite the files, then delete from the store in one
transaction. A failure after the files leaves the store rows, which name the person again, so
running ``forget`` once more finishes the job; the opposite order could leave texts in files
with nothing left in the store to find them by.

Adapter weights cannot be edited: the report names every version whose training data held the
rows (from lineage), and those warm-started from one of them, so the operator can retrain
without them (``--retrain`` queues that run, from the base model).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from adaptd.config import Settings
from adaptd.errors import NotFoundError
from adaptd.retention.lineage import hash_of_key, lineage_key
from adaptd.retraining.dataset import text_key
from adaptd.retraining.replay import GOLDEN, RESERVOIR, ReplayStore, example_to_dict
from adaptd.storage import repository as repo
from adaptd.storage.records import AdapterRecord, Event

logger = logging.getLogger(__name__)

#: the reason a queued retrain carries, and the event kind of a forget
RETRAIN_REASON = "retrain without forgotten data"
EVENT_KIND = "data_forgotten"


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Whose rows: prediction ids, or every row with one attribute value."""

    ids: tuple[str, ...] = ()
    attribute: tuple[str, str] | None = None

    def describe(self) -> str:
        if self.attribute is not None:
            return f"attribute {self.attribute[0]}={self.attribute[1]}"
        return f"{len(self.ids)} prediction id(s)"


@dataclass(frozen=True, slots=True, kw_only=True)
class AffectedAdapter:
    version: str
    status: str
    #: "trained on them" or "warm-started from <version>"
    how: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgetReport:
    target: str
    dry_run: bool
    #: place -> rows (or files) deleted, or that would be in a dry run
    deleted: dict[str, int]
    runs: list[int]
    adapters: list[AffectedAdapter]
    queued_run: int | None = None
    #: retrains running meanwhile: one may have read the rows before they went, and its
    #: adapter and reservoir update bring them back; forget again once it has ended
    running: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "deleted": self.deleted,
            "runs": self.runs,
            "adapters": [
                {"version": a.version, "status": a.status, "how": a.how} for a in self.adapters
            ],
            "queued_run": self.queued_run,
            "running": self.running,
        }


@dataclass(slots=True, kw_only=True)
class _Matcher:
    """A row is the person's when its text is one of theirs or it carries their attribute."""

    keys: set[str] = field(default_factory=set)
    attribute: tuple[str, str] | None = None

    def __call__(self, text: str | None, attributes: Mapping[str, str]) -> bool:
        if self.attribute is not None and attributes.get(self.attribute[0]) == self.attribute[1]:
            return True
        return text is not None and text_key(text) in self.keys


def forget(
    engine: Engine, settings: Settings, target: Target, now: datetime, *, dry_run: bool = False
) -> ForgetReport:
    """Delete (or, with ``dry_run``, count) the target's rows everywhere; raises
    :class:`NotFoundError`, deleting nothing, for an unknown id or an attribute nothing has."""
    if target.ids:
        unknown = sorted(set(target.ids) - repo.known_prediction_ids(engine, target.ids))
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise NotFoundError(f"unknown prediction id {shown}{more}: nothing deleted")
    predictions = repo.predictions_with(engine, ids=target.ids, attribute=target.attribute)
    ids = {p.id for p in predictions} | set(target.ids)
    match = _Matcher(
        keys={text_key(p.text) for p in predictions if p.text}, attribute=target.attribute
    )

    replay = ReplayStore(
        engine=engine,
        capacity=settings.retraining.reservoir_size,
        legacy_dir=settings.state_dir / "replay",
    )
    reservoir, seen = replay.load()
    golden = replay.golden() or []
    references = repo.reference_row_keys(engine)
    # Rows found by attribute lend their texts to the match: the same text elsewhere (a run's
    # training file, a reference row without attributes) is the same person's.
    match.keys |= {text_key(e.text) for e in [*reservoir, *golden] if match(e.text, e.attributes)}
    match.keys |= {text_key(text) for _, text, a in references if text and match(text, a)}

    doomed_refs = [rid for rid, text, attributes in references if match(text, attributes)]
    kept_reservoir = [e for e in reservoir if not match(e.text, e.attributes)]
    kept_golden = [e for e in golden if not match(e.text, e.attributes)]
    run_dirs = _run_dirs_holding(settings.state_dir / "runs", match)

    key = lineage_key(settings.privacy, settings.state_dir)
    hashes = {hash_of_key(key, k) for k in match.keys}
    run_ids = sorted(repo.runs_trained_on(engine, prediction_ids=ids, text_hashes=hashes))
    adapters = _affected(engine, run_ids)

    found = (
        len(predictions)
        + len(doomed_refs)
        + len(reservoir) - len(kept_reservoir)
        + len(golden) - len(kept_golden)
        + len(run_dirs)
        + len(run_ids)
    )  # fmt: skip
    if not found and not ids:
        raise NotFoundError(f"nothing matches {target.describe()}: nothing deleted")

    deleted = {
        "predictions": len(predictions),
        "feedback": 0,
        "reference_rows": len(doomed_refs),
        "training_rows": 0,
        "reservoir": len(reservoir) - len(kept_reservoir),
        "golden": len(golden) - len(kept_golden),
        "run_directories": len(run_dirs),
    }
    if not dry_run:
        rewrite = {}
        if deleted["reservoir"]:
            rewrite[RESERVOIR] = ([example_to_dict(e) for e in kept_reservoir], seen)
        if deleted["golden"]:
            rewrite[GOLDEN] = ([example_to_dict(e) for e in kept_golden], len(kept_golden))
        counts = repo.forget_rows(
            engine,
            prediction_ids=ids,
            reference_ids=doomed_refs,
            text_hashes=hashes,
            replay_sets=rewrite,
        )
        for path in run_dirs:  # after the store: a failed delete there leaves the files too
            shutil.rmtree(path)
        deleted.update(counts)
        _record(engine, now, target, deleted, adapters)
    running = [r.id for r in repo.list_runs(engine, limit=20) if r.status == "running"]
    return ForgetReport(
        target=target.describe(), dry_run=dry_run, deleted=deleted, runs=run_ids,
        adapters=adapters, running=running,
    )  # fmt: skip


def _run_dirs_holding(runs_dir: Path, match: _Matcher) -> list[Path]:
    """Run directories with a JSONL line whose text is the person's (train or eval files)."""
    if not runs_dir.is_dir():
        return []
    return [
        run_dir
        for run_dir in sorted(p for p in runs_dir.iterdir() if p.is_dir())
        if any(_holds(f, match) for f in run_dir.rglob("*.jsonl"))
    ]


def _holds(path: Path, match: _Matcher) -> bool:
    try:
        with path.open(encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                text = row.get("text") if isinstance(row, dict) else None
                if isinstance(text, str) and match(text, {}):
                    return True
    except (OSError, UnicodeDecodeError):
        # Unreadable: it cannot be checked, so it cannot be vouched for either.
        logger.warning("forget: cannot read %s; its run directory is removed", path)
        return True
    return False


def _affected(engine: Engine, run_ids: Sequence[int]) -> list[AffectedAdapter]:
    """Versions trained on the rows, then, transitively, those warm-started from one of them."""
    runs = repo.retrain_runs_by_id(engine, run_ids)
    direct = {r.candidate for r in runs.values() if r.candidate}
    records = {a.version: a for a in repo.list_adapters(engine)}
    out = [
        AffectedAdapter(version=v, status=records[v].status, how="trained on them")
        for v in sorted(direct)
        if v in records
    ]
    tainted = set(direct)
    changed = True
    while changed:
        changed = False
        for record in records.values():
            if record.version in tainted or record.parent not in tainted:
                continue
            if _warm_started(record):
                tainted.add(record.version)
                out.append(
                    AffectedAdapter(
                        version=record.version,
                        status=record.status,
                        how=f"warm-started from {record.parent}",
                    )
                )
                changed = True
    return out


def _warm_started(record: AdapterRecord) -> bool:
    retraining = (record.config or {}).get("retraining") or {}
    return bool(retraining.get("warm_start", True))


def _record(
    engine: Engine,
    now: datetime,
    target: Target,
    deleted: Mapping[str, int],
    adapters: Sequence[AffectedAdapter],
) -> None:
    """An event for the audit trail: counts and versions, never the ids or the value."""
    what = "an attribute value" if target.attribute is not None else target.describe()
    versions = [a.version for a in adapters]
    repo.add_events(
        engine,
        [
            Event(
                ts=now,
                kind=EVENT_KIND,
                source="operator",
                message=f"forgot {what}: {deleted.get('predictions', 0)} predictions; "
                f"{len(versions)} adapter version(s) had trained on them",
                details={"deleted": dict(deleted), "adapters": versions},
            )
        ],
    )


def queue_retrain(engine: Engine, now: datetime) -> int:
    """A retrain request the control role picks up (``retention.jobs``), trained from the
    base model so no weight descends from an adapter that learned the forgotten rows."""
    return repo.start_run(engine, now=now, reason=RETRAIN_REASON, status="queued")
