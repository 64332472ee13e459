"""The demo's picture and verdict from a made-up scenario result: no model, no daemon."""

from __future__ import annotations

import json
from pathlib import Path

from adaptd.cli.demo_cmd import loop_problems, table
from adaptd.demo.scenario import Mark, Point, ScenarioResult
from adaptd.demo.timeline import mark_words, rolling_accuracy, write_summary, write_timeline


def _result(*, final_target: float = 0.8, failed: int = 0, promoted: bool = True) -> ScenarioResult:
    points = [
        Point(t=i, domain="tweets", adapter="a" * 64, n=8, labelled=8, correct=7, feedback=4)
        for i in range(40)
    ] + [
        Point(t=40 + i, domain="movies", adapter="a" * 64, n=8, labelled=8, correct=5, feedback=4)
        for i in range(40)
    ] + [
        Point(t=80 + i, domain="movies", adapter="b" * 64, n=8, labelled=8, correct=6, feedback=0)
        for i in range(40)
    ]  # fmt: skip
    return ScenarioResult(
        shift="tweets-to-movies",
        sizes={"source_train": 10},
        first_adapter="a" * 64,
        final_adapter="b" * 64,
        accuracy={
            "first": {"source": 0.85, "target": 0.65},
            "final": {"source": 0.84, "target": final_target},
        },
        points=points,
        marks=[
            Mark(t=40, kind="shift", message="movies"),
            Mark(t=55, kind="trip", message="tripped"),
            Mark(t=60, kind="retrain_started", message="run 2"),
            Mark(t=80, kind="swap", message="b" * 64),
        ],
        checks=[
            (50.0, "performance.estimated_accuracy", 0.7, "ok"),
            (50.0, "drift.embedding.auc", 0.9, "drift"),
        ],  # fmt: skip
        runs=[
            {"id": 2, "status": "rejected", "samples": 200, "verdict": "gate failed"},
            {"id": 3, "status": "promoted" if promoted else "rejected", "samples": 300},
        ],
        failed_requests=failed,
    )


def test_rolling_accuracy_covers_the_last_window_of_labelled_predictions() -> None:
    points = [
        Point(t=i, domain="d", adapter="a", n=10, labelled=10, correct=10 if i < 5 else 0,
              feedback=0)
        for i in range(10)
    ]  # fmt: skip
    series = rolling_accuracy(points, window=20)
    assert series[0] == (0, 1.0)  # half a window is enough to start
    assert series[-1] == (9, 0.0)  # only wrong answers in the last 20
    assert series[5][1] == 0.5  # 10 right of the last 20


def test_the_loop_closed_only_when_every_part_of_it_happened() -> None:
    assert loop_problems(_result()) == []
    assert any("did not rise" in p for p in loop_problems(_result(final_target=0.6)))
    assert any("failed" in p for p in loop_problems(_result(failed=2)))
    assert any("promoted" in p for p in loop_problems(_result(promoted=False)))


def test_table_shows_both_domains_before_and_after() -> None:
    text = table(_result())
    assert "movies (target)" in text and "65.0%" in text and "80.0%" in text and "+15.0" in text
    assert "tweets (source)" in text and "-1.0" in text
    assert "run 2 rejected, run 3 promoted" in text
    # why a candidate was held back is on screen, not only in summary.json
    assert "run 2 rejected: gate failed" in text


def test_picture_and_summary_are_written(tmp_path: Path) -> None:
    picture = write_timeline(_result(), tmp_path / "timeline.png")
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert picture.stat().st_size > 10_000
    summary = json.loads(write_summary(_result(), tmp_path / "summary.json").read_text())
    assert summary["promoted"] is True and summary["drift_seen"] is True
    assert summary["accuracy"]["final"]["target"] == 0.8
    assert "points" not in summary


def test_a_second_retrain_is_a_retry_before_a_promotion_and_a_refinement_after() -> None:
    marks = [
        Mark(t=1, kind="shift", message="movies"),
        Mark(t=2, kind="trip", message="tripped"),
        Mark(t=3, kind="retrain_started", message="run 2"),
        Mark(t=4, kind="trip", message="again"),  # drawn once
        Mark(t=5, kind="retrain_started", message="run 3, after run 2 was rejected"),
        Mark(t=6, kind="swap", message="b" * 64),
        Mark(t=7, kind="retrain_started", message="run 4, after the promotion"),
        Mark(t=8, kind="swap", message="c" * 64),
    ]
    words = [(m.t, word) for m, word, _ in mark_words(marks)]
    assert words == [
        (1, "the world moves"),
        (2, "policy tripped"),
        (3, "retrain starts"),
        (5, "retry starts"),
        (6, "new adapter serving"),
        (7, "refinement starts"),
        (8, "refined adapter serving"),
    ]
