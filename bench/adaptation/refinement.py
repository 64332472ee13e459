"""``python -m bench.adaptation.refinement STATE [--run N]``: how often does the refinement gate
pass a real refinement, on how many judged rows, and how often a forgetting one?

A refinement is judged on the newest labels it did not train on: its own holdout (20 % of its
labels) plus the labels that arrive while it trains (``retraining.max_late_labels``). Where the
labels stop before it trains, as in ``bench.adaptation``'s default pool, only the holdout is
left. This takes a kept daemon state (``make demo``'s ``demo-state``, or ``python -m
bench.adaptation --keep-state DIR``'s ``DIR/tweets-to-movies/daemon``), scores the refinement of
run ``N``, its champion (the adapter it refined) and its baseline (the adapter the episode
started from: the champion's parent, past any adapter a refinement made) on the demo shift's
1,000 held-out movie snippets and 136 held-out tweets, and draws ``n`` of the movies many
times as the recent slice, judging each draw with the daemon's own :func:`judge` (the golden
slice: the 136 held-out tweets, all of them, or with ``--golden-size N`` N of them drawn afresh
each time, as small as the run's own). Each refinement rule is a column: ``plain`` (a first
retrain's gates), ``margin M`` against the champion alone (the rule until 2026-12-05), ``margin
M, baseline`` (the daemon's since: the golden gate's no-worse measured against the baseline).

Candidates: the refinement as the run saved it; ``--shares``, the same refinement remixed with
its champion at other candidate shares (1: as it was trained, before the daemon mixed it at
``retraining.refinement_interpolation``; above 1, further along the same direction): the
forgetting refinements a rule must still turn away; and the pair reversed, the champion judged
as a refinement of the better model, a real regression. It also judges the golden gate on the
run's own golden rows, the ones that decided in the run.

Binary demo labels: a prediction is the label when the adapter got the row right, the other
label when not (the scoring the daemon does, without a second pass).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
from sqlalchemy import Engine

from adaptd.datasets import demo
from adaptd.datasets.records import Example
from adaptd.demo.scenario import correct_offline
from adaptd.demo.shifts import tweets_to_movies
from adaptd.errors import NotFoundError
from adaptd.evaluation import measures as m
from adaptd.modeling.interpolation import interpolate_adapters
from adaptd.retraining import validation
from adaptd.retraining.replay import example_from_dict
from adaptd.retraining.settings import ValidationSettings
from adaptd.retraining.validation import SliceData, judge
from adaptd.storage import repository as repo
from adaptd.storage.engine import make_engine
from bench.adaptation.candidates import kept_state
from bench.adaptation.gates import MIN_GROUP_SIZE

Predictions = dict[str, list[int]]


def judged_as_refinement(details: dict[str, Any] | None) -> bool:
    """The run's stored verdict judged its candidate as a refinement of the champion (what the
    run's reason only says in words)."""
    return validation.judged_as_refinement((details or {}).get("verdict"))


@dataclass(frozen=True, slots=True)
class Rule:
    """One column: a plain retrain's gates (``margin`` None), or a refinement's at ``margin``,
    its golden gate measured against the baseline or the champion alone."""

    margin: float | None
    baseline: bool = False

    @property
    def name(self) -> str:
        if self.margin is None:
            return "plain"
        return f"margin {self.margin:g}" + (", baseline" if self.baseline else "")


def _predictions(right: Sequence[bool] | np.ndarray, y: Sequence[int]) -> list[int]:
    return [t if ok else 1 - t for ok, t in zip(right, y, strict=True)]


def pass_rates(
    cand: Predictions,
    champ: Predictions,
    y: Predictions,
    *,
    size: int,
    rules: Sequence[Rule],
    draws: int,
    seed: int,
    golden_size: int | None = None,
    start: Predictions | None = None,
    lucky: float | None = None,
    replace: bool = False,
) -> dict[Rule, tuple[float, ...]]:
    """rule -> (share of draws the recent gate passed, share the whole verdict passed[, share
    the whole verdict passed among the draws whose golden rows the champion measured at least
    ``lucky`` above the baseline on, and the share of such draws]). ``golden_size``: judge each
    draw on that many golden rows, drawn with the recent ones (default: every golden row, every
    time; ``replace``: drawn with replacement, a fresh golden set's spread rather than that of
    overlapping subsets). ``start``: the baseline's predictions, for the rules that measure
    against it."""
    rng = np.random.default_rng(seed)
    passed = {rule: [0, 0, 0] for rule in rules}
    lucky_draws = 0
    y_golden = np.asarray(y["golden"])
    judged_as = {
        rule: ValidationSettings()
        if rule.margin is None
        else ValidationSettings().model_copy(update={"refinement_margin": rule.margin})
        for rule in rules
    }
    n_golden = len(y["golden"])
    for _ in range(draws):
        ix = {
            "recent": rng.choice(len(y["recent"]), size, replace=False),
            "golden": np.arange(n_golden)
            if golden_size is None
            else rng.choice(n_golden, golden_size, replace=replace),
        }
        slices = {
            k: SliceData(name=k, y_true=tuple(y[k][i] for i in rows)) for k, rows in ix.items()
        }
        c = {k: [cand[k][i] for i in rows] for k, rows in ix.items()}
        b = {k: [champ[k][i] for i in rows] for k, rows in ix.items()}
        s = None if start is None else {"golden": [start["golden"][i] for i in ix["golden"]]}
        # the champion's own golden gain on these rows: what it was promoted on, in the run
        is_lucky = (
            lucky is not None
            and s is not None
            and float(
                np.mean(np.asarray(b["golden"]) == y_golden[ix["golden"]])
                - np.mean(np.asarray(s["golden"]) == y_golden[ix["golden"]])
            )
            >= lucky - 1e-9
        )
        lucky_draws += is_lucky
        for rule in rules:
            verdict = judge(
                judged_as[rule],
                slices,
                c,
                b,
                min_group_size=MIN_GROUP_SIZE,
                positive=1,
                refinement=rule.margin is not None,
                baseline=s if rule.baseline else None,
                baseline_version="baseline" if rule.baseline else None,
            )
            recent = next(g for g in verdict.gates if g.slice == "recent")
            passed[rule][0] += recent.to_dict()["passed"]
            passed[rule][1] += verdict.passed
            passed[rule][2] += verdict.passed and is_lucky
    if lucky is None or start is None:
        return {k: (v[0] / draws, v[1] / draws) for k, v in passed.items()}
    return {
        k: (v[0] / draws, v[1] / draws, v[2] / max(lucky_draws, 1), lucky_draws / draws)
        for k, v in passed.items()
    }


def baseline_of(engine: Engine, run: Any) -> str | None:
    """The adapter the daemon judged ``run``'s refinement against on golden. Its verdict names
    it since 2026-12-05; for a state kept before, the daemon's own walk up the store's adapters
    from the run's champion (:func:`validation.episode_baseline`, every label counted)."""
    verdict = (run.details or {}).get("verdict") or {}
    if "baseline" in verdict:
        return cast("str | None", verdict["baseline"])
    try:
        champion = repo.get_adapter(engine, run.parent)
        start = validation.episode_baseline(champion, partial(repo.get_adapter, engine))
    except NotFoundError:
        return None
    return None if start is None else start.version


def _remixed(champion: str, saved: str, shares: Sequence[float], work: Path) -> dict[str, str]:
    """The saved refinement remixed with its champion at each candidate share: the daemon saved
    ``(1 - x0) champion + x0 candidate``, and ``(1 - s) champion + s saved`` with ``s = x / x0``
    is the candidate at share ``x`` (rank kept: the mixture is exact at four times the rank)."""
    meta = json.loads((Path(saved) / "adaptd.json").read_text(encoding="utf-8"))
    x0 = float((meta.get("interpolation") or {}).get("share", 1.0))
    rank = int(json.loads((Path(saved) / "adapter_config.json").read_text())["r"])
    out = {}
    for x in shares:
        target = work / f"share-{x:g}"
        shutil.copytree(saved, target)
        if interpolate_adapters(Path(champion), target, x / x0, max_rank=4 * rank) is None:
            raise SystemExit(f"{saved}: not plain LoRA, it cannot be remixed")
        out[f"the refinement at share {x:g}"] = str(target)
    return out


def _golden_rows(engine: Engine) -> list[Example]:
    """The run's golden set as the store keeps it (the rows its golden gate judged)."""
    stored = repo.replay_set(engine, "golden")
    return [example_from_dict(e, "golden set") for e in (stored[0] if stored else [])]


def _pct(d: m.PairedDifference) -> str:
    return f"{100 * d.difference:+.1f} [{100 * d.interval.low:+.1f}, {100 * d.interval.high:+.1f}]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dir", nargs="?", default="demo-state", type=Path)
    parser.add_argument(
        "--run", type=int, default=None, help="the refinement's run (default: the last)"
    )
    parser.add_argument("--sizes", default="150,246,400,646", help="judged rows to draw")
    parser.add_argument(
        "--margins",
        default="-,0.02,0.05",
        help="refinement_margin values ('-': a plain gate); each is judged against the "
        "champion alone and, where the state has one, against the baseline",
    )
    parser.add_argument(
        "--golden-size",
        type=int,
        default=None,
        help="golden rows drawn for each verdict from the held-out source rows (default: all)",
    )
    parser.add_argument(
        "--golden-replace",
        action="store_true",
        help="draw the golden rows with replacement (a bootstrap: the spread of a fresh golden "
        "set of that size, where 91 of 136 without replacement overlap)",
    )
    parser.add_argument(
        "--shares",
        default="",
        help="also judge the refinement remixed with its champion at these candidate shares "
        "(1: as trained, unmixed)",
    )
    parser.add_argument(
        "--lucky",
        type=float,
        default=None,
        help="also the whole verdict's pass rate among draws whose golden rows the champion "
        "measured at least this much above the baseline on (runs 35 and 40: +0.022, +0.044)",
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
    engine = make_engine(f"sqlite:///{state / 'adaptd.db'}")
    try:
        start = baseline_of(engine, refinements[-1])
        golden_rows = _golden_rows(engine)
    finally:
        engine.dispose()
    if start is not None and start not in paths:
        start = None
    shift = tweets_to_movies()  # only its held-out rows are read
    held = {"recent": shift.target_holdout, "golden": shift.source_holdout}
    y = {k: [demo.LABELS.index(e.label or "") for e in rows] for k, rows in held.items()}
    if args.golden_size is not None and not 0 < args.golden_size <= len(y["golden"]):
        parser.error(f"--golden-size: 1 to {len(y['golden'])} (the held-out source rows)")
    shares = [float(s) for s in args.shares.split(",") if s.strip()]
    with tempfile.TemporaryDirectory(prefix="refinement-") as work:
        models = {"the champion": paths[parent], "the refinement": paths[candidate]}
        if start is not None:
            models = {"the baseline": paths[start], **models}
        models |= _remixed(paths[parent], paths[candidate], shares, Path(work))
        right = {
            name: {
                k: np.asarray(correct_offline(settings, path, rows), dtype=bool)
                for k, rows in {**held, "run's golden": golden_rows}.items()
            }
            for name, path in models.items()
        }
    print(  # noqa: T201
        f"run {run_id}: baseline {(start or 'none')[:12]}, champion {parent[:12]}, "
        f"refinement {candidate[:12]}\n"
    )
    print("| model | domain | accuracy | vs the champion | vs the baseline |")  # noqa: T201
    print("|---|---|---:|---|---|")  # noqa: T201
    names = {"recent": "movies (1,000 held out)", "golden": "tweets (136 held out)"}
    names["run's golden"] = f"the run's {len(golden_rows)} golden tweets"
    for name, got in right.items():
        for k, label in names.items():
            vs = [
                _pct(m.paired_difference(got[k], right[other][k], level=0.95))
                if other in right and other != name
                else ""
                for other in ("the champion", "the baseline")
            ]
            print(f"| {name} | {label} | {got[k].mean():.1%} | {vs[0]} | {vs[1]} |")  # noqa: T201
    preds = {name: {k: _predictions(got[k], y[k]) for k in held} for name, got in right.items()}
    margins = [None if s.strip() == "-" else float(s) for s in args.margins.split(",")]
    rules = [Rule(mg) for mg in margins]
    if start is not None:
        rules += [Rule(mg, baseline=True) for mg in margins if mg is not None]
    print(f"\n| judged rows | judged | {' | '.join(r.name for r in rules)} |")  # noqa: T201
    print("|---:|---|" + "---:|" * len(rules))  # noqa: T201
    results: list[dict[str, object]] = []
    champ = preds["the champion"]
    candidates = [(n, p, champ) for n, p in preds.items() if n.startswith("the refinement")]
    candidates.append(("reversed (a regression)", champ, preds["the refinement"]))
    for size in (int(s) for s in args.sizes.split(",")):
        for name, cand, against in candidates:
            rates = pass_rates(
                cand,
                against,
                y,
                size=size,
                rules=rules,
                draws=args.draws,
                seed=args.seed,
                golden_size=args.golden_size,
                start=preds.get("the baseline"),
                lucky=args.lucky,
                replace=args.golden_replace,
            )
            cells = " | ".join(
                f"{r[0]:.2f} ({r[1]:.2f})" + (f" [{r[2]:.2f} of {r[3]:.2f}]" if len(r) > 2 else "")
                for r in rates.values()
            )
            print(f"| {size} | {name} | {cells} |", flush=True)  # noqa: T201
            results.append(
                {"size": size, "candidate": name, "rates": {r.name: v for r, v in rates.items()}}
            )
    golden = "all" if args.golden_size is None else f"{args.golden_size} drawn"
    if args.golden_replace:
        golden += " with replacement"
    print(  # noqa: T201
        "\n(share of draws the recent gate passed; in brackets the whole verdict, the golden "
        f"gate on the held-out source rows included: {golden} of {len(y['golden'])}; the "
        "reversed pair's baseline is the same start"
        + (
            f"; in square brackets the whole verdict among the share of draws whose golden rows "
            f"the champion measured at least {args.lucky:+g} above the baseline on)"
            if args.lucky is not None
            else ")"
        )
    )
    print(json.dumps({"run": run_id, "results": results}))  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
