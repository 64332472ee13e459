"""``python -m bench.adaptation.refinement STATE [--run N]``: how often does the refinement gate
pass a real refinement, on how many judged rows?

A refinement is judged on the newest labels it did not train on: its own holdout (20 % of its
labels) plus the labels that arrive while it trains (``retraining.max_late_labels``). Where the
labels stop before it trains, as in ``bench.adaptation``'s default pool, only the holdout is
left. This takes a kept daemon state (``make demo``'s ``demo-state``, or ``python -m
bench.adaptation --keep-state DIR``'s ``DIR/tweets-to-movies/daemon``), scores the refinement of
run ``N`` and its champion (the adapter it refined) on the demo shift's 1,000 held-out movie
snippets, and draws ``n`` of those rows many times as the recent slice, judging each draw with
the daemon's own :func:`judge` (the golden slice: the 136 held-out tweets, all of them, or with
``--golden-size N`` N of them drawn afresh each time, as small as the run's own). The same pair
reversed, the champion judged as a refinement of the better model, is a real
regression of the same size: what a wider margin would let through.

Binary demo labels: a prediction is the label when the adapter got the row right, the other
label when not (the scoring the daemon does, without a second pass).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from adaptd.datasets import demo
from adaptd.demo.scenario import correct_offline
from adaptd.demo.shifts import tweets_to_movies
from adaptd.evaluation import measures as m
from adaptd.retraining.settings import ValidationSettings
from adaptd.retraining.validation import SliceData, judge
from bench.adaptation.candidates import kept_state
from bench.adaptation.gates import MIN_GROUP_SIZE


def judged_as_refinement(details: dict[str, Any] | None) -> bool:
    """The run's stored verdict applied ``validation.refinement_margin``: the gates judged its
    candidate as a refinement of the champion (what the run's reason only says in words)."""
    verdict = (details or {}).get("verdict") or {}
    return any("refinement_margin" in (g.get("threshold") or {}) for g in verdict.get("gates", []))


def _predictions(right: Sequence[bool], y: Sequence[int]) -> list[int]:
    return [t if ok else 1 - t for ok, t in zip(right, y, strict=True)]


def pass_rates(
    cand: dict[str, list[int]],
    champ: dict[str, list[int]],
    y: dict[str, list[int]],
    *,
    size: int,
    margins: Sequence[float | None],
    draws: int,
    seed: int,
    golden_size: int | None = None,
) -> dict[float | None, tuple[float, float]]:
    """margin -> (share of draws the recent gate passed, share the whole verdict passed).
    ``golden_size``: judge each draw on that many golden rows, drawn with the recent ones
    (default: every golden row, every time)."""
    rng = np.random.default_rng(seed)
    passed = {margin: [0, 0] for margin in margins}
    judged_as = {
        margin: ValidationSettings()
        if margin is None
        else ValidationSettings().model_copy(update={"refinement_margin": margin})
        for margin in margins
    }
    n_golden = len(y["golden"])
    for _ in range(draws):
        ix = {
            "recent": rng.choice(len(y["recent"]), size, replace=False),
            "golden": np.arange(n_golden)
            if golden_size is None
            else rng.choice(n_golden, golden_size, replace=False),
        }
        slices = {
            k: SliceData(name=k, y_true=tuple(y[k][i] for i in rows)) for k, rows in ix.items()
        }
        c = {k: [cand[k][i] for i in rows] for k, rows in ix.items()}
        b = {k: [champ[k][i] for i in rows] for k, rows in ix.items()}
        for margin in margins:
            verdict = judge(
                judged_as[margin],
                slices,
                c,
                b,
                min_group_size=MIN_GROUP_SIZE,
                positive=1,
                refinement=margin is not None,
            )
            recent = next(g for g in verdict.gates if g.slice == "recent")
            passed[margin][0] += recent.to_dict()["passed"]
            passed[margin][1] += verdict.passed
    return {k: (v[0] / draws, v[1] / draws) for k, v in passed.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dir", nargs="?", default="demo-state", type=Path)
    parser.add_argument(
        "--run", type=int, default=None, help="the refinement's run (default: the last)"
    )
    parser.add_argument("--sizes", default="150,246,400,646", help="judged rows to draw")
    parser.add_argument(
        "--margins", default="-,0.02,0.05", help="refinement_margin values ('-': a plain gate)"
    )
    parser.add_argument(
        "--golden-size",
        type=int,
        default=None,
        help="golden rows drawn for each verdict from the held-out source rows (default: all)",
    )
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    state, settings, runs, paths = kept_state(parser, args.state_dir)
    refinements = [
        r
        for r in runs
        if judged_as_refinement(r.details) and r.parent in paths and r.candidate in paths
    ]
    if args.run is not None:
        refinements = [r for r in refinements if r.id == args.run]
    if not refinements:
        parser.error(f"{state}: no refinement run with a candidate on disk")
    run_id, parent, candidate = (
        refinements[-1].id,
        refinements[-1].parent,
        refinements[-1].candidate,
    )
    shift = tweets_to_movies()  # only its held-out rows are read
    held = {"recent": shift.target_holdout, "golden": shift.source_holdout}
    y = {k: [demo.LABELS.index(e.label or "") for e in rows] for k, rows in held.items()}
    if args.golden_size is not None and not 0 < args.golden_size <= len(y["golden"]):
        parser.error(f"--golden-size: 1 to {len(y['golden'])} (the held-out source rows)")
    preds = {
        version: {
            k: _predictions(correct_offline(settings, paths[version], rows), y[k])
            for k, rows in held.items()
        }
        for version in (parent, candidate)
    }
    for k in held:
        right = {v: np.asarray(preds[v][k]) == np.asarray(y[k]) for v in preds}
        d = m.paired_difference(right[candidate], right[parent], level=0.95)
        print(  # noqa: T201
            f"run {run_id}, {k} ({len(y[k])} held out): champion {parent[:12]} "
            f"{right[parent].mean():.1%}, refinement {candidate[:12]} "
            f"{right[candidate].mean():.1%}, {100 * d.difference:+.1f} "
            f"[{100 * d.interval.low:+.1f}, {100 * d.interval.high:+.1f}]"
        )
    margins = [None if s.strip() == "-" else float(s) for s in args.margins.split(",")]
    head = " | ".join("plain" if mg is None else f"margin {mg:g}" for mg in margins)
    print(f"\n| judged rows | judged | {head} |")  # noqa: T201
    print("|---:|---|" + "---:|" * len(margins))  # noqa: T201
    results: list[dict[str, object]] = []
    for size in (int(s) for s in args.sizes.split(",")):
        for name, cand, champ in (
            ("the refinement", preds[candidate], preds[parent]),
            ("reversed (a regression)", preds[parent], preds[candidate]),
        ):
            rates = pass_rates(
                cand,
                champ,
                y,
                size=size,
                margins=margins,
                draws=args.draws,
                seed=args.seed,
                golden_size=args.golden_size,
            )
            cells = " | ".join(f"{r:.2f} ({v:.2f})" for r, v in rates.values())
            print(f"| {size} | {name} | {cells} |", flush=True)  # noqa: T201
            results.append({"size": size, "candidate": name, "rates": list(rates.values())})
    golden = "all" if args.golden_size is None else f"{args.golden_size} drawn"
    print(  # noqa: T201
        "\n(share of draws the recent gate passed; in brackets the whole verdict, the golden "
        f"gate on the held-out source rows included: {golden} of {len(y['golden'])})"
    )
    print(json.dumps({"run": run_id, "results": results}))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
