"""bench.adaptation.refinement finds a kept state's refinements by what the gates recorded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from bench.adaptation.gates import MIN_GROUP_SIZE
from bench.adaptation.refinement import baseline_of, judged_as_refinement
from sqlalchemy import Engine

from adaptd.retraining.settings import ValidationSettings
from adaptd.retraining.validation import SliceData, judge
from adaptd.storage import repository as repo
from adaptd.storage.records import AdapterRecord


def _stored_verdict(*, refinement: bool) -> dict[str, Any]:
    """A run's details as the retrain job stores them, with a verdict from the daemon's judge."""
    y = tuple([0, 1] * 60)
    slices = {
        "recent": SliceData(name="recent", y_true=y),
        "golden": SliceData(name="golden", y_true=y),
    }
    candidate = {k: list(y) for k in slices}
    champion = {k: [1 - t if i % 4 == 0 else t for i, t in enumerate(y)] for k in slices}
    verdict = judge(
        ValidationSettings(),
        slices,
        candidate,
        champion,
        min_group_size=MIN_GROUP_SIZE,
        positive=1,
        refinement=refinement,
    )
    return {"data": {}, "verdict": verdict.to_dict()}


def test_a_refinement_is_known_by_its_verdict_not_its_reason() -> None:
    assert judged_as_refinement(_stored_verdict(refinement=True))
    assert not judged_as_refinement(_stored_verdict(refinement=False))


def test_runs_without_a_verdict_are_not_refinements() -> None:
    # a failed or cancelled run stores no verdict; an old row may have no details at all
    assert not judged_as_refinement(None)
    assert not judged_as_refinement({"data": {}})
    assert not judged_as_refinement({"verdict": None})


T0 = datetime(2026, 12, 5, tzinfo=UTC)


def _episode(engine: Engine) -> None:
    """start -> first retrain -> a refinement -> another, stored as the daemon stores them."""
    parent = None
    for hour, (version, refinement) in enumerate(
        [("start", False), ("first", False), ("refined", True), ("again", True)]
    ):
        verdict = _stored_verdict(refinement=refinement)["verdict"]
        repo.add_adapter(
            engine,
            AdapterRecord(
                version=version, status="retired", path=f"/adapters/{version}",
                created=T0 + timedelta(hours=hour), parent=parent, verdict=verdict,
            ),
        )  # fmt: skip
        parent = version


def test_a_state_kept_before_the_verdict_named_its_baseline_walks_the_daemons_way(
    sqlite_engine: Engine,
) -> None:
    _episode(sqlite_engine)
    for champion in ("first", "refined", "again"):
        run = SimpleNamespace(parent=champion, details=_stored_verdict(refinement=True))
        run.details["verdict"].pop("baseline")  # stored before 2026-12-05
        assert baseline_of(sqlite_engine, run) == "start"
    # the champion started the episode, or the store does not know it: no baseline
    assert baseline_of(sqlite_engine, SimpleNamespace(parent="start", details={})) is None
    assert baseline_of(sqlite_engine, SimpleNamespace(parent="imported", details={})) is None


def test_a_verdict_that_names_its_baseline_is_taken_at_its_word(sqlite_engine: Engine) -> None:
    _episode(sqlite_engine)
    details = _stored_verdict(refinement=True)
    details["verdict"]["baseline"] = "first"  # a champion rolled back to before the labels
    assert baseline_of(sqlite_engine, SimpleNamespace(parent="again", details=details)) == "first"
    details["verdict"]["baseline"] = None  # the daemon judged it against its champion alone
    assert baseline_of(sqlite_engine, SimpleNamespace(parent="again", details=details)) is None
