"""``python -m bench.adaptation.contrastive [--domain tweets|movies] [--sizes all] [--draws 3]``:
does the contrastive stage (``retraining.contrastive``) lift a first adapter trained on a few
hundred rows above feature extraction?

On a few hundred rows the recipe without it keeps its linear probe (no fine-tuned epoch beats it
on a dev split of a few dozen rows, RECIPE.md), so the first adapter *is* feature extraction.
The stage (:mod:`adaptd.retraining.contrastive`, SetFit) first fine-tunes the LoRA weights so that
texts of one label lie close together, then fits the probe again.

Per draw (a random subset of ``size`` rows of the pool, and the trainer's seed), on the same rows
and the same held-out rows:

- **peer**: scikit-learn's ``LogisticRegression(C=1)`` on the frozen mean-pooled embeddings of
  every chosen row (the feature-extraction baseline of ``bench.adaptation``);
- **recipe, stage off**: the daemon's trainer (``adaptd.retraining.trainer.train``) as it was
  before the stage, its 10% dev split carved from the same rows;
- **recipe, stage on**: the same with ``contrastive: on``; its "stage" column is the contrastive
  checkpoint scored on the held-out rows whether or not the dev split kept it.

Data: ``tweets`` is the demo's source (its 326 training tweets, its 136 held-out ones);
``movies`` is the recipe bench's split (1,000 held-out snippets; subsets of the first 1,500).
``--folds K`` (tweets): every packaged tweet is held out once, the peer and the recipe with the
stage trained on the other folds, and the gain is a paired interval over all of them (136
held-out tweets alone put one standard error at 3.3 points).

``--base`` runs another backbone (the peer pools as ``model.pooling: auto`` does: mean on MiniLM,
the last token on a decoder); ``--only-off`` runs the recipe without the stage, as ``auto`` does
on a base that is not a sentence encoder (SmolLM2-135M); ``--rank`` sets ``retraining.rank``;
``--epochs-over-probe`` turns on ``TrainSpec.epochs_over_probe``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from adaptd.datasets.records import Example
from adaptd.demo.shifts import tweets_to_movies
from adaptd.modeling.base import resolve_base
from adaptd.retraining.scoring import score_candidate, write_eval_file
from adaptd.retraining.spec import TrainSpec
from adaptd.retraining.trainer import train, write_train_file
from bench.adaptation.recipe import LABELS, accuracy, baseline, baseline_predictions, split


def run_recipe(
    base: str,
    rows: list[Example],
    test: list[Example],
    work: Path,
    *,
    contrastive: str,
    args: argparse.Namespace,
    seed: int,
) -> dict[str, Any]:
    from adaptd.modeling.base import load_tokenizer

    write_train_file(work / "train.jsonl", [(e.text, e.label or "", 1.0) for e in rows])
    write_eval_file(work / "test.jsonl", {"test": [e.text for e in test]})
    spec = TrainSpec(
        base=base,
        labels=LABELS,
        train_file=str(work / "train.jsonl"),
        out_dir=str(work / f"adapter-{contrastive}"),
        progress_file=str(work / "progress.jsonl"),
        eval_file=str(work / "test.jsonl"),
        max_length=args.max_length,
        threads=args.threads,
        seed=seed,
        target_modules=("all-linear",),
        contrastive=contrastive,  # type: ignore[arg-type]
        contrastive_iterations=args.iterations,
        contrastive_learning_rate=args.lr,
        contrastive_pairing=args.pairing,
        rank=args.rank,
        alpha=2 * args.rank,
        epochs_over_probe=args.epochs_over_probe,
    )
    tokenizer = load_tokenizer(base)
    at: dict[str, float] = {}

    def on_checkpoint(name: str, model: Any) -> None:
        predicted, _ = score_candidate(
            model, tokenizer, {"test": [e.text for e in test]}, max_length=args.max_length
        )
        at[name] = accuracy(predicted["test"], test)

    started = time.perf_counter()
    result = train(spec, lambda p: None, on_checkpoint=on_checkpoint)
    return {
        "predictions": result.predictions["candidate"]["test"],
        "accuracy": round(accuracy(result.predictions["candidate"]["test"], test), 4),
        "kept": result.kept,
        "stage": None if "contrastive" not in at else round(at["contrastive"], 4),
        "checkpoints": {k: round(v, 4) for k, v in at.items()},
        "dev": [c["dev_accuracy"] for c in result.checkpoints],
        "contrastive": result.contrastive,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _kept(variant: dict[str, Any] | None) -> str:
    return "not run" if variant is None else f"{100 * variant['accuracy']:.1f}% ({variant['kept']})"


def build_parser() -> argparse.ArgumentParser:
    """The command's options; their defaults are the shipped stage's settings, which
    ``bench.adaptation.setfit --with-recipe`` reads from here to run the same recipe."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.adaptation.contrastive", description=__doc__
    )
    parser.add_argument("--domain", choices=("tweets", "movies"), default="tweets")
    parser.add_argument("--sizes", default="all", help="rows per draw, comma-separated ('all')")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--first-draw", type=int, default=0, help="to add draws to a run")
    parser.add_argument("--iterations", type=int, default=10, help="contrastive_iterations")
    parser.add_argument("--lr", type=float, default=1e-3, help="contrastive_learning_rate")
    parser.add_argument("--pairing", choices=("in-batch", "setfit"), default="in-batch")
    parser.add_argument("--max-length", type=int, default=128, help="model.max_length")
    parser.add_argument(
        "--rank", type=int, default=8, help="retraining.rank (alpha twice it, as shipped)"
    )
    parser.add_argument("--threads", type=int, default=1, help="the training child's default")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="tweets only: K-fold over all the packaged tweets, each scored once (a paired "
        "interval on every tweet instead of 136 held-out ones)",
    )
    only = parser.add_mutually_exclusive_group()
    only.add_argument(
        "--only-on",
        action="store_true",
        help="skip the stage-off recipe (to re-measure a change to the stage's selection)",
    )
    only.add_argument(
        "--only-off",
        action="store_true",
        help="skip the stage: the recipe as `contrastive: auto` runs it on a base that is not a "
        "sentence encoder (a decoder such as SmolLM2)",
    )
    parser.add_argument(
        "--base", default=None, help="model.base (default: the shipped all-MiniLM-L6-v2)"
    )
    parser.add_argument(
        "--epochs-over-probe",
        action="store_true",
        help="the fine-tuned epochs are kept unless the probe is significantly better on dev "
        "(TrainSpec.epochs_over_probe; the daemon's default keeps the probe unless an epoch "
        "beats it)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    base = resolve_base(args.base)
    if args.folds:
        if args.domain != "tweets" or args.folds < 2:
            parser.error("--folds K (K >= 2) is for --domain tweets; movies have 1,000 held out")
        return folds(base, args)
    if args.domain == "tweets":
        shift = tweets_to_movies()
        pool, test = list(shift.source_train), list(shift.source_holdout)
    else:
        pool, test = split(1500, 1000)
    print(  # noqa: T201
        f"{args.domain}: pool {len(pool)}, held out {len(test)}; contrastive {args.pairing}, "
        f"{args.iterations} iterations at lr {args.lr}; {args.threads} thread(s)",
        flush=True,
    )
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="adaptd-contrastive-") as tmp:
        sizes = [len(pool) if v == "all" else int(v) for v in args.sizes.split(",")]
        for size in sizes:
            for draw in range(args.first_draw, args.first_draw + args.draws):
                chosen = random.Random(1000 * size + draw).sample(range(len(pool)), size)
                rows = [pool[i] for i in chosen]
                # the pooling the daemon's model.pooling: auto picks (mean on MiniLM)
                peer = baseline(base, rows, test, args.max_length, "auto")
                off = on = None
                if not args.only_on:
                    off = run_recipe(
                        base, rows, test, Path(tmp), contrastive="off", args=args, seed=draw
                    )
                if not args.only_off:
                    on = run_recipe(
                        base, rows, test, Path(tmp), contrastive="on", args=args, seed=draw
                    )
                for variant in (off, on):
                    if variant is not None:
                        variant.pop("predictions")
                row = {"rows": size, "draw": draw, "peer": round(peer, 4), "off": off, "on": on}
                results.append(row)
                print(json.dumps(row), flush=True)  # noqa: T201
    print(  # noqa: T201
        "| rows | draw | peer: LR on frozen features | recipe, stage off (kept) "
        "| stage alone | recipe, stage on (kept) | on minus peer | stage seconds |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")  # noqa: T201
    for r in results:
        off, on = r["off"], r["on"]
        stage = "not run" if on is None else f"{100 * on['stage']:.1f}%"
        gain = "" if on is None else f"{100 * (on['accuracy'] - r['peer']):+.1f}"
        seconds = "" if on is None else on["contrastive"]["seconds"]
        print(  # noqa: T201
            f"| {r['rows']} | {r['draw']} | {100 * r['peer']:.1f}% "
            f"| {_kept(off)} | {stage} | {_kept(on)} | {gain} | {seconds} |"
        )
    means = []
    for name in ("on", "off"):
        gains = [100 * (r[name]["accuracy"] - r["peer"]) for r in results if r[name]]
        if gains:
            means.append(f"stage {name} {np.mean(gains):+.1f}")
    print(  # noqa: T201
        f"mean over {len(results)} draws, points over the peer: {', '.join(means)}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


def fold_split(pool: list[Example], k: int, folds: int) -> tuple[list[int], list[Example]]:
    """Fold ``k`` of ``folds`` over ``pool`` (seed 7, every row held out once): the indices it
    holds out and the rows it trains on. ``bench.adaptation.setfit`` scores the same folds."""
    held = random.Random(7).sample(range(len(pool)), len(pool))[k::folds]
    held_set = set(held)
    return held, [e for i, e in enumerate(pool) if i not in held_set]


def folds(base: str, args: argparse.Namespace) -> int:
    """Every packaged tweet held out once: K folds, each training the peer and the recipe with
    the stage (without it under ``--only-off``) on the other K-1, then the recipe's gain over the
    peer on all of them, paired."""
    from adaptd.datasets.demo import tweets
    from adaptd.evaluation.measures import paired_difference

    pool = list(tweets())
    n = len(pool)
    peer_right = np.zeros(n, dtype=bool)
    recipe_right = np.zeros(n, dtype=bool)
    stage = "off" if args.only_off else "on"
    print(  # noqa: T201
        f"tweets: all {n}, {args.folds} folds; contrastive {stage}: {args.pairing}, "
        f"{args.iterations} iterations at lr {args.lr}, LoRA rank {args.rank}; "
        f"{args.threads} thread(s)",
        flush=True,
    )
    kept: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="adaptd-contrastive-") as tmp:
        for k in range(args.folds):
            held, rows = fold_split(pool, k, args.folds)
            test = [pool[i] for i in held]
            peer = baseline_predictions(base, rows, test, args.max_length, "auto")
            recipe = run_recipe(base, rows, test, Path(tmp), contrastive=stage, args=args, seed=k)
            for i, by_peer, by_recipe in zip(held, peer, recipe.pop("predictions"), strict=True):
                peer_right[i] = LABELS[by_peer] == pool[i].label
                recipe_right[i] = LABELS[by_recipe] == pool[i].label
            fold = {"fold": k, "rows": len(rows), "held_out": len(test), stage: recipe}
            fold["peer"] = round(float(peer_right[held].mean()), 4)
            print(json.dumps(fold), flush=True)  # noqa: T201
            # every held-out tweet's outcome, to pair this run with another (another rank, say)
            right = {"peer": peer_right[held].tolist(), "recipe": recipe_right[held].tolist()}
            kept.append({**fold, "held": held, "right": right})
    if args.json:
        args.json.write_text(json.dumps(kept) + "\n")
    d = paired_difference(recipe_right, peer_right, level=0.95)
    print(  # noqa: T201
        f"all {n} tweets, {args.folds} folds: peer {100 * peer_right.mean():.1f}%, recipe with "
        f"the stage {stage} {100 * recipe_right.mean():.1f}%; recipe minus peer "
        f"{100 * d.difference:+.1f} points "
        f"[{100 * d.interval.low:+.1f}, {100 * d.interval.high:+.1f}] (95%, paired; only the "
        f"recipe right on {d.a_only}, only the peer on {d.b_only})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
