"""``python -m bench.adaptation.steps [--min-steps 150,0] [--replay-ratios 0.5,1]
[--new-labels 420]``: what do the ``retraining.min_steps`` floor and the
``retraining.replay_ratio`` buy on the small sets a real shift gives?

The demo's shift (``tweets-to-movies``) offline, once per ``min_steps`` value, through the real
trainer: the first adapter on the source tweets the daemon's job would train on (its golden and
holdout rows carved out by the job's own :func:`assemble`), then the retrain after the shift,
warm-started from it, on ``--new-labels`` movie labels assembled as the daemon assembles them
(the newest 20 % held out, tweets replayed at each ``--replay-ratios`` value, dev rows from the
new labels). All are scored on the shift's held-out rows nobody trains on (1,000 movie snippets,
136 tweets), with their wall time, steps and the checkpoint they kept; each retrain's source
(tweet) accuracy is also compared with its first adapter's on the same tweets (lost / gained).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from adaptd.datasets import demo
from adaptd.datasets.records import Example
from adaptd.demo.shifts import tweets_to_movies
from adaptd.modeling.base import resolve_base
from adaptd.retraining.dataset import AssemblySpec, TrainingSet, assemble
from adaptd.retraining.scoring import write_eval_file
from adaptd.retraining.settings import RetrainingSettings
from adaptd.retraining.spec import TrainSpec
from adaptd.retraining.trainer import train, write_train_file

LABELS = demo.LABELS


def accuracy(predicted: list[int], examples: tuple[Example, ...]) -> float:
    return sum(LABELS[p] == e.label for p, e in zip(predicted, examples, strict=True)) / len(
        examples
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptation.steps", description=__doc__)
    parser.add_argument("--min-steps", default="150,0", help="values to compare")
    parser.add_argument(
        "--replay-ratios", default="0.5", help="replayed source rows per new label, to compare"
    )
    parser.add_argument("--new-labels", type=int, default=420, help="movie labels of the retrain")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    base = resolve_base(None)
    defaults = RetrainingSettings()
    shift = tweets_to_movies()
    # As the job: 10 % golden (at least 30), then the newest 20 % held out; the rest trains.
    golden = list(shift.source_train[: max(30, len(shift.source_train) // 10)])
    spec = AssemblySpec(labels=LABELS, min_holdout=30, holdout_fraction=0.2)
    first = assemble(list(shift.source_train), [], spec, exclude=golden)
    retrains = {
        ratio: assemble(
            list(shift.target_live[: args.new_labels]),
            list(first.train),
            replace(spec, replay_ratio=ratio),
            exclude=golden,
        )
        for ratio in [float(v) for v in args.replay_ratios.split(",")]
    }
    test = {"target": shift.target_holdout, "source": shift.source_holdout}
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="adaptd-steps-") as tmp:
        work = Path(tmp)
        write_eval_file(work / "test.jsonl", {k: [e.text for e in v] for k, v in test.items()})

        def run(name: str, data: TrainingSet, **extra: Any) -> dict[str, Any]:
            d = work / name
            pairs = zip(data.train, data.weights, strict=True)
            rows = [(e.text, e.label or "", w) for e, w in pairs]
            write_train_file(d / "train.jsonl", rows, replayed=list(data.replayed) or None)
            started = time.perf_counter()
            result = train(
                TrainSpec(
                    base=base,
                    contrastive="off",  # the fine-tune alone (stage: bench.adaptation.contrastive)
                    labels=LABELS,
                    train_file=str(d / "train.jsonl"),
                    out_dir=str(d / "adapter"),
                    progress_file=str(d / "progress.jsonl"),
                    eval_file=str(work / "test.jsonl"),
                    pooling="mean",
                    target_modules=tuple(defaults.target_modules or ()) or None,
                    epochs=defaults.epochs,
                    learning_rate=defaults.learning_rate,
                    head_learning_rate=defaults.head_learning_rate,
                    dev_from=defaults.dev_from,
                    max_length=64,
                    threads=args.threads,
                    seed=args.seed,
                    **extra,
                ),
                lambda p: None,
            )
            predicted = result.predictions["candidate"]
            row = {
                "run": name,
                "rows": len(rows),
                "replayed": data.n_replay,
                "kept": result.kept,
                "epochs": result.epochs_run,
                "steps": result.steps,
                "wall_s": round(time.perf_counter() - started, 1),
                **{k: round(accuracy(predicted[k], v), 4) for k, v in test.items()},
                "checkpoints": result.checkpoints,
                "source_right": [
                    LABELS[p] == e.label
                    for p, e in zip(predicted["source"], test["source"], strict=True)
                ],
            }
            shown = {k: v for k, v in row.items() if k != "source_right"}
            print(json.dumps(shown), flush=True)  # noqa: T201
            return row

        for value in [int(v) for v in args.min_steps.split(",")]:
            champion = run(f"first-{value}", first, min_steps=value)
            out.append(champion)
            for ratio, retrain in retrains.items():
                row = run(
                    f"retrain-{value}-replay-{ratio:g}",
                    retrain,
                    min_steps=value,
                    warm_start=str(work / f"first-{value}" / "adapter"),
                )
                pairs = list(zip(champion["source_right"], row["source_right"], strict=True))
                row["lost"] = sum(a and not b for a, b in pairs)
                row["gained"] = sum(b and not a for a, b in pairs)
                out.append(row)
    print(  # noqa: T201
        "\n| run | rows | replayed | kept | epochs | steps | wall s | movies | tweets "
        "| tweets lost / gained |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---|")  # noqa: T201
    for r in out:
        print(  # noqa: T201
            f"| {r['run']} | {r['rows']} | {r['replayed']} | {r['kept']} | {r['epochs']} | "
            f"{r['steps']} | {r['wall_s']} | {100 * r['target']:.1f}% | "
            f"{100 * r['source']:.1f}% | {r.get('lost', '')} / {r.get('gained', '')} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
