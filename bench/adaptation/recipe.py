"""python -m bench.adaptation.recipe [--quick] [--threads N] [--only NAME,...] [--with-old]

Which fine-tune recipe makes the first adapter beat feature extraction? On the shipped
all-MiniLM-L6-v2 and Rotten Tomatoes snippets (deterministic split: shuffled with seed 0, the
first rows train, the next ones are the held-out test set no run sees), every variant runs
through the real trainer (``adaptd.retraining.trainer.train``) and is scored on the same test
rows. The peer is scikit-learn's LogisticRegression(C=1) on frozen mean-pooled embeddings of the
same base ("feature extraction"), the floor PERFORMANCE.md section 11 sets.

A second, small case (600 training rows) checks that the step budget does not starve small
datasets. Numbers and the chosen defaults are in bench/adaptation/RECIPE.md.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptd.datasets import demo
from adaptd.datasets.records import Example
from adaptd.modeling.base import resolve_base
from adaptd.retraining.scoring import write_eval_file
from adaptd.retraining.spec import TrainSpec
from adaptd.retraining.trainer import train, write_train_file

LABELS = demo.LABELS


@dataclass(frozen=True, slots=True)
class Variant:
    name: str
    rows: int
    spec: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def variants(quick: bool, full_rows: int, small_rows: int, with_old: bool) -> list[Variant]:
    new = {"pooling": "mean", "learning_rate": 1e-3, "head_learning_rate": 1e-3, "epochs": 2}
    if quick:
        return [
            Variant("features (probe only)", full_rows, {**new, "mode": "features"}),
            Variant("LP-FT auto", full_rows, {**new, "mode": "auto", "epochs": 1}),
        ]
    old = [
        Variant(
            "old: cls pooler, one LR 5e-4, 3 ep",
            full_rows,
            {
                "pooling": "cls",
                "mode": "finetune",
                "linear_probe": False,
                "learning_rate": 5e-4,
                "head_learning_rate": 5e-4,
                "epochs": 3,
                "min_steps": 0,
                "schedule": "linear",
                "warmup_ratio": 0.06,
            },
            "adaptd before #9",
        )
    ]
    return (old if with_old else []) + [
        Variant("features (probe only)", full_rows, {**new, "mode": "features"}),
        Variant(
            "FT no probe, LoRA 1e-3 head 2e-3",
            full_rows,
            {**new, "mode": "finetune", "linear_probe": False, "head_learning_rate": 2e-3},
            "the measured 83.8% recipe, cosine",
        ),
        Variant("LP-FT auto, LoRA 1e-3 head 1e-3", full_rows, {**new, "mode": "auto"}),
        Variant(
            "LP-FT auto, LoRA on q/k/v/dense",
            full_rows,
            {**new, "mode": "auto", "target_modules": ("query", "key", "value", "dense")},
            "peft's default for BERT is query/value only",
        ),
        Variant(
            "LP-FT auto, q/k/v/dense, LoRA 2e-3",
            full_rows,
            {
                **new,
                "mode": "auto",
                "target_modules": ("query", "key", "value", "dense"),
                "learning_rate": 2e-3,
            },
        ),
        Variant(
            "small: LP-FT auto, min_steps 150",
            small_rows,
            {**new, "mode": "auto", "min_steps": 150},
        ),
        Variant(
            "small: LP-FT auto, min_steps 0",
            small_rows,
            {**new, "mode": "auto", "min_steps": 0},
            "2 epochs only: the starved run",
        ),
        Variant("small: features (probe only)", small_rows, {**new, "mode": "features"}),
    ]


def split(n_train: int, n_test: int) -> tuple[list[Example], list[Example]]:
    movies = list(demo.rotten_tomatoes())
    random.Random(0).shuffle(movies)
    return movies[:n_train], movies[n_train : n_train + n_test]


def accuracy(predictions: list[int], examples: list[Example]) -> float:
    hits = sum(LABELS[p] == e.label for p, e in zip(predictions, examples, strict=True))
    return hits / len(examples)


def baseline(
    base: str, train_ex: list[Example], test_ex: list[Example], max_length: int, pooling: str
) -> float:
    """scikit-learn logistic regression (C=1) on frozen pooled embeddings: the peer."""
    predictions = baseline_predictions(base, train_ex, test_ex, max_length, pooling)
    return accuracy(predictions, test_ex)


def baseline_predictions(
    base: str, train_ex: list[Example], test_ex: list[Example], max_length: int, pooling: str
) -> list[int]:
    """The peer's predicted label index for every row of ``test_ex``."""
    from sklearn.linear_model import LogisticRegression

    from adaptd.modeling.base import load_classifier, load_tokenizer
    from adaptd.modeling.probe import extract_features

    tokenizer = load_tokenizer(base)
    model = load_classifier(base, LABELS, tokenizer=tokenizer, pooling=pooling)  # type: ignore[arg-type]

    def embed(examples: list[Example]) -> Any:
        ids = tokenizer([e.text for e in examples], truncation=True, max_length=max_length)
        return extract_features(model, ids["input_ids"], tokenizer.pad_token_id).numpy()

    y = [LABELS.index(e.label or "") for e in train_ex]
    clf = LogisticRegression(C=1.0, max_iter=2000).fit(embed(train_ex), y)
    return [int(p) for p in clf.predict(embed(test_ex))]


def run_variant(
    variant: Variant,
    base: str,
    train_ex: list[Example],
    test_ex: list[Example],
    work: Path,
    *,
    threads: int,
    max_length: int,
) -> dict[str, Any]:
    rows = train_ex[: variant.rows]
    write_train_file(work / "train.jsonl", [(e.text, e.label or "", 1.0) for e in rows])
    write_eval_file(work / "eval.jsonl", {"test": [e.text for e in test_ex]})
    spec = TrainSpec(
        base=base,
        contrastive="off",  # the fine-tune alone (stage: bench.adaptation.contrastive)
        labels=LABELS,
        train_file=str(work / "train.jsonl"),
        out_dir=str(work / "adapter"),
        progress_file=str(work / "progress.jsonl"),
        eval_file=str(work / "eval.jsonl"),
        max_length=max_length,
        threads=threads,
        **variant.spec,
    )
    started = time.perf_counter()
    result = train(spec, lambda p: None)
    return {
        "variant": variant.name,
        "rows": len(rows),
        "accuracy": round(accuracy(result.predictions["candidate"]["test"], test_ex), 4),
        "kept": result.kept,
        "probe_dev": result.probe_dev_accuracy,
        "best_dev": result.best_dev_accuracy,
        "steps": result.steps,
        "seconds": round(time.perf_counter() - started, 1),
        "note": variant.note,
    }


def _pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


def _pick(checkpoints: list[dict[str, Any]], select_by: str) -> str:
    """The checkpoint the trainer's rule keeps (the probe is checkpoint 0, ties keep the
    earlier one), recomputed from the recorded dev scores."""

    def key(c: dict[str, Any]) -> tuple[float, float]:
        if select_by == "loss":
            return (-c["dev_loss"], c["dev_accuracy"])
        return (c["dev_accuracy"], -c["dev_loss"])

    best = checkpoints[0]
    for c in checkpoints[1:]:
        if key(c) > key(best):
            best = c
    return str(best["checkpoint"])


def shift_case(
    base: str, work: Path, *, threads: int, max_length: int, new_labels: int, seeds: list[int]
) -> list[dict[str, Any]]:
    """The retrain after the demo's shift, offline: a champion trained by the recipe on the
    source tweets, then warm-started retrains on ``new_labels`` movie labels assembled by the
    daemon's own :func:`assemble` (20 % newest held out, replay of the tweets at 0.5). Every
    checkpoint is scored on the 1,000 held-out movie snippets, so each selection rule (dev rows
    from the new labels or from all rows; by accuracy or by loss) can be compared with the
    checkpoint that was best on held-out data."""
    from adaptd.demo.shifts import tweets_to_movies
    from adaptd.modeling.base import load_tokenizer
    from adaptd.retraining.dataset import AssemblySpec, assemble
    from adaptd.retraining.scoring import score_candidate

    shift = tweets_to_movies()
    tokenizer = load_tokenizer(base)
    recipe: dict[str, Any] = {"pooling": "mean", "max_length": max_length, "threads": threads}
    test = {
        "target": list(shift.target_holdout),
        "source": list(shift.source_holdout),
    }

    def spec_for(name: str, rows: list[tuple[str, str, float]], **extra: Any) -> TrainSpec:
        d = work / name
        write_train_file(d / "train.jsonl", rows, replayed=extra.pop("replayed", None))
        return TrainSpec(
            base=base,
            contrastive="off",  # the fine-tune alone (stage: bench.adaptation.contrastive)
            labels=LABELS,
            train_file=str(d / "train.jsonl"),
            out_dir=str(d / "adapter"),
            progress_file=str(d / "progress.jsonl"),
            **recipe,
            **extra,
        )

    def scorer(sink: dict[str, dict[str, float]], slices: dict[str, list[Example]]) -> Any:
        texts = {k: [e.text for e in v] for k, v in slices.items()}

        def on_checkpoint(name: str, model: Any) -> None:
            predicted, _ = score_candidate(model, tokenizer, texts, max_length=max_length)
            sink[name] = {k: accuracy(predicted[k], slices[k]) for k in slices}

        return on_checkpoint

    started = time.perf_counter()
    write_eval_file(work / "test.jsonl", {k: [e.text for e in v] for k, v in test.items()})
    champion = spec_for(
        "champion",
        [(e.text, e.label or "", 1.0) for e in shift.source_train],
        eval_file=str(work / "test.jsonl"),
    )
    champion_result = train(champion, lambda p: None)
    champion_acc = {
        k: accuracy(champion_result.predictions["candidate"][k], v) for k, v in test.items()
    }
    print(  # noqa: T201
        json.dumps({"champion": champion_result.kept, **champion_acc}), flush=True
    )
    training = assemble(
        list(shift.target_live[:new_labels]),
        list(shift.source_train),
        AssemblySpec(labels=LABELS, min_holdout=30, holdout_fraction=0.2, replay_ratio=0.5),
    )
    slices = {**test, "recent": list(training.holdout)}
    rows_out: list[dict[str, Any]] = [
        {
            "variant": "champion (recipe on the source tweets)",
            "rows": len(shift.source_train),
            "kept": champion_result.kept,
            "target": champion_acc["target"],
            "source": champion_acc["source"],
        }
    ]
    rows = [
        (e.text, e.label or "", w) for e, w in zip(training.train, training.weights, strict=True)
    ]
    for seed in seeds:
        for dev_from in ("all", "new"):
            scores: dict[str, dict[str, float]] = {}
            spec = spec_for(
                f"retrain-{dev_from}-{seed}",
                rows,
                replayed=list(training.replayed),
                warm_start=champion.out_dir,
                dev_from=dev_from,
                seed=seed,
            )
            result = train(spec, lambda p: None, on_checkpoint=scorer(scores, slices))
            best_held_out = max(scores, key=lambda k: scores[k]["target"])
            for select_by in ("accuracy", "loss"):
                kept = _pick(result.checkpoints, select_by)
                row = {
                    "variant": f"retrain: dev from {dev_from}, by {select_by}",
                    "seed": seed,
                    "rows": len(rows),
                    "dev_rows": result.dev_rows,
                    "kept": kept,
                    "target": round(scores[kept]["target"], 4),
                    "source": round(scores[kept]["source"], 4),
                    "recent": round(scores[kept]["recent"], 4),
                    "best_on_target": f"{best_held_out} {scores[best_held_out]['target']:.3f}",
                    "checkpoints": {
                        c["checkpoint"]: {**c, **scores[c["checkpoint"]]}
                        for c in result.checkpoints
                    },
                }
                rows_out.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "checkpoints"}), flush=True)  # noqa: T201
    print(  # noqa: T201
        f"\nshift case: {training.n_new} new + {training.n_replay} replayed rows, "
        f"{len(training.holdout)} held out; {time.perf_counter() - started:.0f}s\n"
    )
    print("| variant | seed | dev rows | kept | target | source | recent | best on target |")  # noqa: T201
    print("|---|---:|---:|---|---:|---:|---:|---|")  # noqa: T201
    for r in rows_out:
        print(  # noqa: T201
            f"| {r['variant']} | {r.get('seed', '')} | {r.get('dev_rows', '')} | {r['kept']} | "
            f"{100 * r['target']:.1f}% | {100 * r['source']:.1f}% | "
            f"{_pct(r.get('recent'))} | "
            f"{r.get('best_on_target', '')} |"
        )
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptation.recipe")
    parser.add_argument("--quick", action="store_true", help="400 rows, two variants")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--only", default="", help="comma-separated substrings of variant names")
    parser.add_argument(
        "--with-old", action="store_true", help="also the recipe before #9 (about 4 min more)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    parser.add_argument(
        "--shift",
        action="store_true",
        help="the retrain after the tweets -> movies shift instead: where to pick checkpoints",
    )
    parser.add_argument("--new-labels", type=int, default=525, help="shift case: new labels")
    parser.add_argument("--seeds", default="0", help="shift case: comma-separated seeds")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    if args.shift:
        with tempfile.TemporaryDirectory() as tmp:
            rows = shift_case(
                resolve_base(None),
                Path(tmp),
                threads=args.threads,
                max_length=args.max_length,
                new_labels=args.new_labels,
                seeds=[int(x) for x in args.seeds.split(",")],
            )
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
        return
    full_rows, small_rows, n_test = (400, 200, 300) if args.quick else (1500, 600, 1000)
    train_ex, test_ex = split(full_rows, n_test)
    base = resolve_base(None)
    chosen = [
        v
        for v in variants(args.quick, full_rows, small_rows, args.with_old)
        if not args.only or any(s in v.name for s in args.only.split(","))
    ]
    started = time.perf_counter()
    results = []
    peers = {}
    for rows in sorted({v.rows for v in chosen}, reverse=True):
        peers[rows] = round(baseline(base, train_ex[:rows], test_ex, args.max_length, "mean"), 4)
        results.append(
            {"variant": "peer: sklearn LR C=1, mean-pooled", "rows": rows, "accuracy": peers[rows]}
        )
    if not args.quick and not args.only:
        cls = round(baseline(base, train_ex, test_ex, args.max_length, "cls"), 4)
        results.append(
            {"variant": "peer: sklearn LR C=1, CLS pooler", "rows": full_rows, "accuracy": cls}
        )
    for variant in chosen:
        with tempfile.TemporaryDirectory() as tmp:
            row = run_variant(
                variant,
                base,
                train_ex,
                test_ex,
                Path(tmp),
                threads=args.threads,
                max_length=args.max_length,
            )
        row["vs_peer"] = round(100 * (row["accuracy"] - peers[row["rows"]]), 1)
        results.append(row)
        print(json.dumps(row), flush=True)  # noqa: T201 - progress of a long benchmark
    print(  # noqa: T201
        f"\nheld-out movie snippets: {len(test_ex)}; threads {args.threads}; "
        f"max_length {args.max_length}; total {time.perf_counter() - started:.0f}s\n"
    )
    print("| variant | rows | held-out acc | vs peer | kept | dev probe / best | steps | s |")  # noqa: T201
    print("|---|---:|---:|---:|---|---|---:|---:|")  # noqa: T201
    for r in results:
        print(  # noqa: T201
            f"| {r['variant']} | {r['rows']} | {100 * r['accuracy']:.1f}% | "
            f"{r.get('vs_peer', '')} | {r.get('kept', '')} | "
            f"{r.get('probe_dev', '')} / {r.get('best_dev', '')} | {r.get('steps', '')} | "
            f"{r.get('seconds', '')} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
