"""bench.adaptation.refinement finds a kept state's refinements by what the gates recorded."""

from __future__ import annotations

from types import SimpleNamespace

from bench.adaptation.gates import MIN_GROUP_SIZE
from bench.adaptation.refinement import baseline_of, judged_as_refinement

from adaptd.retraining.settings import ValidationSettings
from adaptd.retraining.validation import SliceData, judge


def _stored_verdict(*, refinement: bool) -> dict[str, object]:
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


def _run(parent: str | None, candidate: str, *, refinement: bool) -> SimpleNamespace:
    return SimpleNamespace(
        parent=parent, candidate=candidate, details=_stored_verdict(refinement=refinement)
    )


def test_the_baseline_is_the_parent_of_the_episodes_first_retrain() -> None:
    runs = [
        _run(None, "start", refinement=False),
        _run("start", "first", refinement=False),
        _run("first", "refined", refinement=True),
        _run("refined", "again", refinement=True),
    ]
    assert baseline_of(runs, "first") == "start"
    assert baseline_of(runs, "refined") == "start"
    # a champion no run made (imported by hand) has no baseline the state can tell
    assert baseline_of(runs, "imported") is None
