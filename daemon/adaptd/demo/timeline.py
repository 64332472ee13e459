"""The picture of a scenario: accuracy over the replayed stream, with what the daemon did marked.

Top: labelled accuracy of the live traffic (a rolling window, coloured by the adapter that
answered) and the label-free estimate the monitors computed at each check. Bottom: the
embedding-drift AUC of each check. Vertical lines: the shift, the first tripped check, the
retrain starting, and the swap to the new adapter (and to each refined one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from adaptd.demo.scenario import Mark, Point, ScenarioResult

#: predictions per point of the rolling accuracy
ROLLING = 160

_MARKS = {
    "shift": ("the world moves", "tab:gray"),
    "trip": ("policy tripped", "tab:orange"),
    "retrain_started": ("retrain starts", "tab:purple"),
    "swap": ("new adapter serving", "tab:green"),
}
#: marks drawn every time, with the word then used: a retrain after a promotion refines it, one
#: before any promotion retries after a rejection
_REPEATED = {"retrain_started": "refinement starts", "swap": "refined adapter serving"}
_RETRY = "retry starts"


def mark_words(marks: Sequence[Mark]) -> list[tuple[Mark, str, str]]:
    """The marks the picture draws, each with its word and colour."""
    out: list[tuple[Mark, str, str]] = []
    seen: set[str] = set()
    for mark in marks:
        if mark.kind not in _MARKS or (mark.kind in seen and mark.kind not in _REPEATED):
            continue
        label, colour = _MARKS[mark.kind]
        if mark.kind in seen:
            label = _REPEATED[mark.kind] if "swap" in seen else _RETRY
        seen.add(mark.kind)
        out.append((mark, label, colour))
    return out


def rolling_accuracy(points: Sequence[Point], window: int = ROLLING) -> list[tuple[float, float]]:
    """(time, accuracy over the last ``window`` labelled predictions) after every request."""
    out: list[tuple[float, float]] = []
    recent: list[Point] = []
    labelled = correct = 0
    for p in points:
        recent.append(p)
        labelled += p.labelled
        correct += p.correct
        while recent and labelled - recent[0].labelled >= window:
            labelled -= recent[0].labelled
            correct -= recent[0].correct
            recent.pop(0)
        if labelled >= window // 2:
            out.append((p.t, correct / labelled))
    return out


def write_timeline(result: ScenarioResult, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    versions = list(dict.fromkeys(p.adapter for p in result.points))
    colours = ["tab:red", "tab:blue", "tab:cyan", "tab:olive"]
    for i, version in enumerate(versions):
        mine = [p for p in result.points if p.adapter == version]
        series = rolling_accuracy(mine)
        if series:
            name = (
                "first adapter"
                if version == result.first_adapter
                else "retrained adapter"
                if i == 1
                else "refined adapter"
            )
            top.plot(
                [t / 60 for t, _ in series],
                [a for _, a in series],
                color=colours[i % len(colours)],
                label=f"labelled accuracy, {name} {version[:8]}",
            )
    estimated = [
        (t, v)
        for t, s, v, _ in result.checks
        if s == "performance.estimated_accuracy" and v is not None
    ]
    if estimated:  # checks without enough data have no value: no legend entry for nothing
        top.scatter(
            [t / 60 for t, _ in estimated],
            [v for _, v in estimated],
            marker="x",
            color="black",
            label="estimated accuracy (no labels, each check)",
            zorder=3,
        )
    auc = [(t, v) for t, s, v, _ in result.checks if s == "drift.embedding.auc" and v is not None]
    if auc:
        bottom.plot([t / 60 for t, _ in auc], [v for _, v in auc], marker="o", color="tab:brown")
    bottom.set_ylabel("drift AUC")
    bottom.set_ylim(0.4, 1.02)
    for mark, label, colour in mark_words(result.marks):
        for axis in (top, bottom):
            axis.axvline(mark.t / 60, color=colour, linestyle="--", linewidth=1.2)
        top.text(mark.t / 60, 1.005, " " + label, color=colour, rotation=90, va="top", fontsize=8)
    top.set_ylabel(f"accuracy (rolling {ROLLING})")
    top.set_ylim(0.4, 1.02)
    top.legend(loc="lower left", fontsize=8)
    first, final = result.accuracy.get("first", {}), result.accuracy.get("final", {})
    top.set_title(
        f"{result.shift}: held-out target {_pct(first.get('target'))} -> "
        f"{_pct(final.get('target'))}, source {_pct(first.get('source'))} -> "
        f"{_pct(final.get('source'))}",
        fontsize=10,
    )
    bottom.set_xlabel("minutes since live traffic started")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_summary(result: ScenarioResult, out: Path, **extra: object) -> Path:
    doc = result.to_dict()
    # The per-request points are in the picture; the summary keeps the decisions and numbers.
    doc.pop("points")
    doc.update(extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    return out


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"
