"""``python -m bench.adaptation.setfit [--folds 5] [--with-recipe]``: is the first adapter's
missing +3 on the demo's tweets a limit of the recipe, or of a few hundred tweets?

The issue asks the first adapter for feature extraction + 3 points on held-out source data. On
movie snippets the shipped recipe meets it (+4.6 on 400 rows); on the demo's tweets it is +1.7
[-1.4, +4.7] over five folds of all 543 (RECIPE.md). adaptd's contrastive stage is SetFit
(Tunstall et al. 2022) with two departures made for the adapter format and for time: only LoRA
weights move, and in-batch pairs. This benchmark runs SetFit as published on the same folds,
the whole encoder fine-tuned:

- **peer**: scikit-learn's ``LogisticRegression(C=1)`` on the frozen mean-pooled embeddings
  (feature extraction, as everywhere in ``bench.adaptation``);
- **SetFit, full body**: SetFit's pairs (per iteration every row once with a same-label row,
  target 1, and once with another label's row, target 0), 20 iterations, cosine similarity
  regressed by mean squared error, AdamW at 2e-5 with a tenth of warmup, batch 16, one epoch,
  then ``LogisticRegression`` on the tuned embeddings: the defaults of the paper and of the
  ``setfit`` library's ``SetFitTrainer`` before 1.0 (1.0 draws its pairs otherwise), run
  through the daemon's own stage loop (:func:`adaptd.retraining.contrastive.fit_contrastive`)
  with every encoder weight trainable instead of LoRA's;
- **recipe** (``--with-recipe``): the daemon's trainer with the shipped stage, as
  ``bench.adaptation.contrastive --folds`` runs it.

Every packaged tweet is held out once (the folds of ``bench.adaptation.contrastive --folds``,
seed 7), and each method's gain over the peer is a paired interval over all of them. A fold
takes about 25 minutes at 2 threads (SetFit's 1,085 steps): ``--only-folds`` runs some of them,
``--json FILE`` keeps every held-out tweet's outcome so that runs of other folds join one table,
and ``--summary`` prints that table from the file. RECIPE.md has the numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from adaptd.datasets.records import Example
from adaptd.modeling.base import resolve_base
from bench.adaptation.recipe import LABELS, baseline_predictions

#: SetFit's defaults (the paper; the setfit library's SetFitTrainer before 1.0)
ITERATIONS = 20
LEARNING_RATE = 2e-5
BATCH_SIZE = 16


def setfit_full_body(
    base: str, rows: list[Example], test: list[Example], *, max_length: int, seed: int
) -> dict[str, Any]:
    """SetFit with every encoder weight trained, then a logistic regression on its features:
    the predicted label index of every test row, and what the stage did."""
    import torch
    from sklearn.linear_model import LogisticRegression

    from adaptd.modeling.base import load_classifier, load_tokenizer
    from adaptd.modeling.probe import extract_features
    from adaptd.retraining.contrastive import fit_contrastive

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(base)
    model = load_classifier(base, LABELS, tokenizer=tokenizer, pooling="mean")
    for p in model.encoder.parameters():
        p.requires_grad_(True)
    train_ids = tokenizer([e.text for e in rows], truncation=True, max_length=max_length)
    test_ids = tokenizer([e.text for e in test], truncation=True, max_length=max_length)
    y = [LABELS.index(e.label or "") for e in rows]
    started = time.perf_counter()
    stats = fit_contrastive(
        model,
        train_ids["input_ids"],
        y,
        tokenizer.pad_token_id,
        list(model.encoder.parameters()),
        iterations=ITERATIONS,
        learning_rate=LEARNING_RATE,
        batch_size=BATCH_SIZE,
        seed=seed,
        pairing="setfit",
    )
    seconds = time.perf_counter() - started
    with torch.no_grad():
        x_train = extract_features(model, train_ids["input_ids"], tokenizer.pad_token_id).numpy()
        x_test = extract_features(model, test_ids["input_ids"], tokenizer.pad_token_id).numpy()
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(x_train, y)
    return {
        "predictions": [int(p) for p in clf.predict(x_test)],
        "pairs": stats.pairs,
        "steps": stats.steps,
        "loss": [stats.loss_first, stats.loss_last],
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptation.setfit", description=__doc__)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only-folds", default="", help="comma-separated folds to run (a look)")
    parser.add_argument("--max-length", type=int, default=128, help="model.max_length")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--with-recipe", action="store_true", help="also the daemon's recipe")
    parser.add_argument(
        "--summary", action="store_true", help="run no fold: the table of the folds in --json"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="write each fold here as it ends, with every held-out tweet's outcome; folds "
        "already in the file (an earlier run's, of other --only-folds) join the summary",
    )
    args = parser.parse_args(argv)
    if args.folds < 2:
        parser.error("--folds K needs K >= 2")
    if args.summary and not (args.json and args.json.exists()):
        parser.error("--summary reads the folds of an earlier run: --json FILE")
    import torch

    from adaptd.datasets.demo import tweets
    from adaptd.evaluation.measures import paired_difference
    from bench.adaptation.contrastive import build_parser, fold_split, run_recipe

    torch.set_num_threads(args.threads)
    base = resolve_base(None)
    pool = list(tweets())
    n = len(pool)
    chosen = {int(k) for k in args.only_folds.split(",") if k} or set(range(args.folds))
    if args.summary:
        chosen = set()
    methods = ["peer", "setfit"] + (["recipe"] if args.with_recipe else [])
    right = {m: np.zeros(n, dtype=bool) for m in methods}
    scored = np.zeros(n, dtype=bool)
    recipe_args = build_parser().parse_args(
        ["--max-length", str(args.max_length), "--threads", str(args.threads)]
    )
    print(  # noqa: T201
        f"tweets: all {n}, {args.folds} folds ({sorted(chosen)}); SetFit full body, "
        f"{ITERATIONS} iterations at lr {LEARNING_RATE}; {args.threads} thread(s)",
        flush=True,
    )
    folds: list[dict[str, Any]] = []
    if args.json and args.json.exists():
        folds = [f for f in json.loads(args.json.read_text()) if f["fold"] not in chosen]
        if any(m not in f["right"] for f in folds for m in methods):
            parser.error(f"{args.json} has folds without {', '.join(methods)}: run them again")
        for f in folds:
            scored[f["held"]] = True
            for m in methods:
                right[m][f["held"]] = f["right"][m]
    with tempfile.TemporaryDirectory(prefix="adaptd-setfit-") as tmp:
        for k in sorted(chosen):
            held, rows = fold_split(pool, k, args.folds)
            test = [pool[i] for i in held]
            predicted = {"peer": baseline_predictions(base, rows, test, args.max_length, "mean")}
            full = setfit_full_body(base, rows, test, max_length=args.max_length, seed=k)
            predicted["setfit"] = full.pop("predictions")
            fold: dict[str, Any] = {"fold": k, "rows": len(rows), "held_out": len(test)}
            fold["setfit_stage"] = full
            if args.with_recipe:
                recipe = run_recipe(
                    base, rows, test, Path(tmp), contrastive="on", args=recipe_args, seed=k
                )
                predicted["recipe"] = recipe.pop("predictions")
                fold["recipe_kept"] = recipe["kept"]
            scored[held] = True
            for m in methods:
                hits = [LABELS[p] == pool[i].label for i, p in zip(held, predicted[m], strict=True)]
                right[m][held] = hits
                fold[m] = round(float(np.mean(hits)), 4)
            print(json.dumps(fold), flush=True)  # noqa: T201
            fold["held"] = held
            fold["right"] = {m: right[m][held].tolist() for m in methods}
            folds.append(fold)
            if args.json:
                args.json.write_text(json.dumps(sorted(folds, key=lambda f: f["fold"])) + "\n")
    print(  # noqa: T201
        f"\nfolds {sorted(f['fold'] for f in folds)}"
        f"\n| method | accuracy on {int(scored.sum())} tweets | minus peer [95%, paired] "
        "| right only here / only the peer |\n| --- | ---: | ---: | ---: |"
    )
    for m in methods:
        line = f"| {m} | {100 * right[m][scored].mean():.1f}% |"
        if m == "peer":
            print(line + " | |")  # noqa: T201
            continue
        d = paired_difference(right[m][scored], right["peer"][scored], level=0.95)
        print(  # noqa: T201
            f"{line} {100 * d.difference:+.1f} [{100 * d.interval.low:+.1f}, "
            f"{100 * d.interval.high:+.1f}] | {d.a_only} / {d.b_only} |"
        )
    if args.with_recipe:
        d = paired_difference(right["setfit"][scored], right["recipe"][scored], level=0.95)
        print(  # noqa: T201
            f"setfit minus recipe: {100 * d.difference:+.1f} [{100 * d.interval.low:+.1f}, "
            f"{100 * d.interval.high:+.1f}] (95%, paired; right only under SetFit {d.a_only}, "
            f"only under the recipe {d.b_only})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
