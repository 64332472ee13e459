"""``python -m bench.adaptation.retrain [--new-labels 240] [--draws 3] [--variants ...] [--base
PATH]``: which retrain recipe beats the first adapter after the demo's shift, now that the first
adapter is shaped by the contrastive stage?

The demo's shift (``tweets-to-movies``; ``--shift`` names another packaged one) offline,
through the real trainer and the job's own :func:`assemble`: the first adapter on the source
tweets with the shipped defaults (the contrastive stage runs: a fresh LoRA on a few hundred
rows), then, for each of ``--draws``
disjoint draws of ``--new-labels`` movie labels (the size the default policy's
``min_new_labels`` and ``retry_growth`` give: 200, 300, 450), one retrain per variant on the
same assembled rows (newest 20 % held out, tweets replayed one per new label, dev rows from the
new labels). Every model is scored on the shift's held-out rows nobody trains on (1,000 movie
snippets, 136 tweets) and compared with the first adapter on the same rows, paired, with the
Bonett-Price interval the gates use.

Variants (all with the shipped defaults except what is named):

- ``warm``: warm-started from the first adapter (``warm_start: true``; the stage is skipped);
- ``fresh``: a fresh LoRA (``warm_start: false``), the stage only where ``contrastive: auto``
  runs it (a sentence encoder): on a decoder such as SmolLM2 (``--base``), the first adapter's
  recipe, probe and fine-tune, on the new and replayed rows;
- ``warm-lr3e-4``: the same at a third of the learning rates;
- ``warm-probe``: warm-started, the head refitted on the first adapter's features only
  (``mode: features``);
- ``warm-stage``: warm-started, the contrastive stage run again on the new and replayed rows;
- ``fresh-stage``: a fresh LoRA, the first adapter's recipe on the new and replayed rows
  (``warm_start: false``; the stage on, on a sample of at most ``contrastive_max_rows`` rows
  when the set is larger, as the trainer does since the policy's retries outgrew 500 rows;
  5 passes, a retrain's under ``contrastive_iterations: auto``);
- ``fresh-stage-250``: the same with the stage on at most 250 rows (half its minutes);
- ``fresh-stage-10``: the same with 10 passes of the stage, as a first adapter's, where a
  retrain's default (``contrastive_iterations: auto``) is 5: twice the stage's minutes;
- ``fresh-stage-replay-weighted``: ``fresh-stage`` with the replayed rows weighted up to
  ``replay_ratio`` (1.0) of the new rows' weight when the reservoir holds fewer rows than that
  ratio asks for (the demo's 234 tweets against 1,000-2,000 new labels), the mean weight kept
  at 1: the ratio the default was chosen for, without repeating rows (no extra steps);
- ``fresh-stage-replay-half``: ``fresh-stage`` with half the stage's sampled rows drawn from the
  replayed ones (``contrastive_replay_share: 0.5``; the stage's checkpoint is the one kept in
  most retrains, and its sample held about a tenth of replayed rows on 1,500 new labels).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from adaptd.config import Settings
from adaptd.datasets import demo
from adaptd.datasets.records import Example
from adaptd.demo.shifts import SHIFTS
from adaptd.evaluation import measures as m
from adaptd.modeling.base import load_tokenizer, resolve_base
from adaptd.modeling.interpolation import interpolate_adapters
from adaptd.retraining.dataset import AssemblySpec, TrainingSet, assemble
from adaptd.retraining.job import train_spec
from adaptd.retraining.scoring import score_candidate, score_champion, write_eval_file
from adaptd.retraining.spec import TrainSpec
from adaptd.retraining.trainer import train, write_train_file

LABELS = demo.LABELS
#: tokens per text, as the daemon's model.max_length default: training and checkpoint scoring
MAX_LENGTH = 128

#: what each variant changes in the shipped recipe; "warm" marks a warm start from the first
VARIANTS: dict[str, dict[str, Any]] = {
    "warm": {"warm": True},
    "fresh": {"warm": False},
    "warm-lr3e-4": {"warm": True, "learning_rate": 3e-4, "head_learning_rate": 3e-4},
    "warm-probe": {"warm": True, "mode": "features"},
    "warm-stage": {"warm": True, "contrastive": "on"},
    "fresh-stage": {"warm": False, "contrastive": "on"},
    "fresh-stage-250": {"warm": False, "contrastive": "on", "contrastive_max_rows": 250},
    "fresh-stage-10": {"warm": False, "contrastive": "on", "contrastive_iterations": 10},
    "fresh-stage-replay-weighted": {"warm": False, "contrastive": "on", "replay_weighted": True},
    "fresh-stage-replay-half": {
        "warm": False,
        "contrastive": "on",
        "contrastive_replay_share": 0.5,
    },
}
#: replay_ratio of the shipped settings: replayed rows per new row
REPLAY_RATIO = Settings().retraining.replay_ratio


def replay_weighted(data: TrainingSet, ratio: float = REPLAY_RATIO) -> TrainingSet:
    """``data`` with its replayed rows' weights scaled so that they weigh ``ratio`` times the
    new rows, where fewer replayed rows than that were available; every weight then rescaled so
    that the mean stays 1 (the loss's scale, hence the step size, unchanged)."""
    old = sum(w for w, r in zip(data.weights, data.replayed, strict=True) if r)
    new = sum(w for w, r in zip(data.weights, data.replayed, strict=True) if not r)
    if old == 0 or new == 0 or old >= ratio * new:
        return data
    factor = ratio * new / old
    scaled = [w * factor if r else w for w, r in zip(data.weights, data.replayed, strict=True)]
    mean = sum(scaled) / len(scaled)
    return replace(data, weights=tuple(w / mean for w in scaled))


def shipped_spec(*, replaces_champion: bool, **paths: Any) -> TrainSpec:
    """The TrainSpec the daemon's job builds from the default settings, for a first adapter or a
    retrain that ``replaces_champion``."""
    spec = train_spec(Settings(), replaces_champion=replaces_champion, **paths)
    return replace(spec, labels=LABELS)


def right(predicted: list[int], examples: tuple[Example, ...]) -> np.ndarray:
    return np.array([LABELS[p] == e.label for p, e in zip(predicted, examples, strict=True)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptation.retrain", description=__doc__)
    parser.add_argument("--new-labels", type=int, default=240, help="movie labels per retrain")
    parser.add_argument("--draws", type=int, default=3, help="disjoint draws of new labels")
    parser.add_argument("--from-draw", type=int, default=0, help="first draw (to add draws)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="which, comma-separated")
    parser.add_argument(
        "--new-labels-grow",
        default="",
        help="comma-separated later sizes of each draw (the policy's retries, e.g. 360,540)",
    )
    parser.add_argument(
        "--checkpoints",
        action="store_true",
        help="also score every checkpoint on the held-out rows (how good each selection rule is)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--interpolations",
        default="",
        help="comma-separated candidate shares x: each retrain is also scored as (1 - x) * first "
        "adapter + x * itself, as retraining.interpolation proposes it (e.g. 0.5,0.75)",
    )
    parser.add_argument(
        "--shift",
        choices=sorted(SHIFTS),
        default="tweets-to-movies",
        help="the packaged shift (default: the demo's)",
    )
    parser.add_argument(
        "--base",
        default=None,
        help="model.base to train (a directory or a .gguf file; default: the shipped MiniLM)",
    )
    args = parser.parse_args(argv)
    chosen = args.variants.split(",")
    unknown = sorted(set(chosen) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")
    base = resolve_base(args.base)
    shift = SHIFTS[args.shift]()
    sizes = [args.new_labels] + [int(v) for v in args.new_labels_grow.split(",") if v]
    largest = max(sizes)
    if (args.from_draw + args.draws) * largest > len(shift.target_live):
        parser.error(f"draws up to {args.from_draw + args.draws} of {largest} exceed the pool")
    # As the job: 10 % golden (at least 30), then the newest 20 % held out; the rest trains.
    golden = list(shift.source_train[: max(30, len(shift.source_train) // 10)])
    spec = AssemblySpec(labels=LABELS, min_holdout=30, holdout_fraction=0.2)
    first = assemble(list(shift.source_train), [], spec, exclude=golden)
    test = {"target": shift.target_holdout, "source": shift.source_holdout}
    rows_out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="adaptd-retrain-") as tmp:
        work = Path(tmp)
        texts = {k: [e.text for e in v] for k, v in test.items()}
        write_eval_file(work / "test.jsonl", texts)
        tokenizer = load_tokenizer(base)

        def run(name: str, data: TrainingSet, seed: int, **extra: Any) -> dict[str, Any]:
            d = work / name
            pairs = zip(data.train, data.weights, strict=True)
            rows = [(e.text, e.label or "", w) for e, w in pairs]
            write_train_file(d / "train.jsonl", rows, replayed=list(data.replayed) or None)
            at: dict[str, dict[str, float]] = {}

            def on_checkpoint(checkpoint: str, model: Any) -> None:
                if args.checkpoints:
                    predicted, _ = score_candidate(model, tokenizer, texts, max_length=MAX_LENGTH)
                    at[checkpoint] = {
                        k: round(float(right(predicted[k], v).mean()), 4) for k, v in test.items()
                    }

            started = time.perf_counter()
            result = train(
                replace(
                    shipped_spec(
                        replaces_champion=name != "first",
                        base=base,
                        train_file=str(d / "train.jsonl"),
                        out_dir=str(d / "adapter"),
                        progress_file=str(d / "progress.jsonl"),
                        eval_file=str(work / "test.jsonl"),
                    ),
                    max_length=MAX_LENGTH,
                    threads=args.threads,
                    seed=seed,
                    **extra,
                ),
                lambda p: None,
                on_checkpoint=on_checkpoint,
            )
            predicted = result.predictions["candidate"]
            return {
                "run": name,
                "rows": len(rows),
                "replayed": data.n_replay,
                "kept": result.kept,
                "stage_s": (result.contrastive or {}).get("seconds"),
                "wall_s": round(time.perf_counter() - started, 1),
                "right": {k: right(predicted[k], v) for k, v in test.items()},
                # per checkpoint: dev accuracy (what picked it), held-out accuracy (--checkpoints)
                "checkpoints": [{**c, **at.get(c["checkpoint"], {})} for c in result.checkpoints],
            }

        def compare(row: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for k in test:
                d = m.paired_difference(row["right"][k], champion["right"][k], level=0.95)
                out[f"{k}_change"] = round(d.difference, 4)
                out[f"{k}_interval"] = [round(d.interval.low, 4), round(d.interval.high, 4)]
            return out

        def mix(name: str, share: float) -> dict[str, Any]:
            """The retrain ``name`` mixed with the first adapter as the trainer mixes them,
            read back from disk and scored as serving loads it."""
            d = work / f"{name}@{share:g}"
            shutil.copytree(work / name / "adapter", d)
            interpolate_adapters(
                work / "first" / "adapter", d, share, max_rank=2 * Settings().retraining.rank
            )
            predicted = score_champion(base, LABELS, d, texts, max_length=MAX_LENGTH)
            return {"run": d.name, "right": {k: right(predicted[k], v) for k, v in test.items()}}

        shares = [float(v) for v in args.interpolations.split(",") if v]
        champion = run("first", first, seed=0)
        print(json.dumps(_shown(champion)), flush=True)  # noqa: T201
        for draw in range(args.from_draw, args.from_draw + args.draws):
            pool = shift.target_live[draw * largest : (draw + 1) * largest]
            for size in sizes:
                # the policy's retries train on every label since the shift: a longer prefix
                data = assemble(
                    list(pool[:size]), list(first.train), replace(spec, seed=draw), exclude=golden
                )
                for variant in chosen:
                    extra = dict(VARIANTS[variant])
                    if extra.pop("warm"):
                        extra["warm_start"] = str(work / "first" / "adapter")
                    rows = replay_weighted(data) if extra.pop("replay_weighted", False) else data
                    row = run(f"{variant}-{draw}-{size}", rows, seed=draw, **extra)
                    row["variant"], row["draw"], row["new_labels"] = variant, draw, size
                    row |= compare(row)
                    print(json.dumps(_shown(row)), flush=True)  # noqa: T201
                    rows_out.append(row)
                    for share in shares:
                        mixed = mix(f"{variant}-{draw}-{size}", share)
                        mixed |= {"variant": f"{variant}@{share:g}", "draw": draw}
                        mixed |= {"new_labels": size, **compare(mixed), "checkpoints": []}
                        mixed |= {k: row[k] for k in ("rows", "replayed", "kept", "wall_s")}
                        print(json.dumps(_shown(mixed)), flush=True)  # noqa: T201
                        rows_out.append(mixed)
    _table(champion, rows_out, names=(shift.target, shift.source))
    return 0


def _shown(row: dict[str, Any]) -> dict[str, Any]:
    shown = {k: v for k, v in row.items() if k != "right"}
    shown.update({k: round(float(v.mean()), 4) for k, v in row["right"].items()})
    return shown


def _table(
    champion: dict[str, Any],
    rows: list[dict[str, Any]],
    *,
    names: tuple[str, str],
) -> None:
    target, source = names

    def pct(x: float) -> str:
        return f"{100 * x:+.1f}"

    first = {k: 100 * float(v.mean()) for k, v in champion["right"].items()}
    print(  # noqa: T201
        f"\nfirst adapter: {target} {first['target']:.1f}%, {source} {first['source']:.1f}% "
        f"(kept {champion['kept']}, {champion['wall_s']} s)\n"
        "\n| variant | draw | new labels | rows | kept | wall s | "
        f"{target} vs first [95%] | {source} vs first [95%] |"
    )
    print("|---|---:|---:|---:|---|---:|---|---|")  # noqa: T201
    for r in rows:
        t, s = r["target_interval"], r["source_interval"]
        print(  # noqa: T201
            f"| {r['variant']} | {r['draw']} | {r['new_labels']} | {r['rows']} | {r['kept']} "
            f"| {r['wall_s']} | "
            f"{pct(r['target_change'])} [{pct(t[0])}, {pct(t[1])}] | "
            f"{pct(r['source_change'])} [{pct(s[0])}, {pct(s[1])}] |"
        )
    if any("target" in c for r in rows for c in r["checkpoints"]):
        print(f"\n| run | checkpoint | dev | {target} | {source} |")  # noqa: T201
        print("|---|---|---:|---:|---:|")  # noqa: T201
        for r in rows:
            for c in r["checkpoints"]:
                mark = " (kept)" if c["checkpoint"] == r["kept"] else ""
                print(  # noqa: T201
                    f"| {r['run']} | {c['checkpoint']}{mark} | {c['dev_accuracy']} | "
                    f"{c.get('target')} | {c.get('source')} |"
                )
    print(  # noqa: T201
        f"\n| variant | mean {target} vs first | mean {source} vs first | mean wall s |"
    )
    print("|---|---:|---:|---:|")  # noqa: T201
    for variant in dict.fromkeys(r["variant"] for r in rows):  # with the mixtures, in order
        mine = [r for r in rows if r["variant"] == variant]
        if mine:
            mean = {
                k: sum(r[k] for r in mine) / len(mine)
                for k in ("target_change", "source_change", "wall_s")
            }
            print(  # noqa: T201
                f"| {variant} | {pct(mean['target_change'])} | {pct(mean['source_change'])} | "
                f"{mean['wall_s']:.0f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
