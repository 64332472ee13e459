"""``python -m bench.adaptation.contrastive [--sizes 200,400] [--draws 3] [--iterations 5]``:
can a contrastive first stage (SetFit, Tunstall et al. 2022) lift a first adapter trained on a
few hundred rows above feature extraction?

On a few hundred rows the daemon's recipe keeps its linear probe (no fine-tuned epoch beats it
on a dev split of a few dozen rows, RECIPE.md), so the first adapter *is* feature extraction.
SetFit's answer for small data: first fine-tune the encoder so that texts with one label lie
close together (pairs of the training rows, cosine similarity regressed onto 1 for the same label
and 0 for different ones), then fit the logistic regression on the new embeddings. Here the
encoder is fine-tuned the daemon's way (LoRA on every linear layer of the shipped MiniLM, mean
pooling, ``adaptd.retraining.trainer.build_model``), so a win would carry over to the adapter
format unchanged.

Data: the recipe bench's split (Rotten Tomatoes snippets shuffled with seed 0, 1,000 held-out
rows no run sees); each draw fits on a random subset of ``size`` of the first 1,500 rows. The
peer in the same run, on the same rows: scikit-learn's ``LogisticRegression(C=1)`` on the frozen
mean-pooled embeddings. Both are scored on the same 1,000 rows; the report gives each draw and
the mean paired difference.
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
from adaptd.modeling.base import resolve_base
from adaptd.retraining.spec import TrainSpec
from bench.adaptation.recipe import LABELS, split

MAX_LENGTH = 64


def pairs(labels: list[int], iterations: int, rng: random.Random) -> list[tuple[int, int, float]]:
    """SetFit's pair generation: per iteration, every row once with a random row of its label
    (target 1) and once with a random row of another label (target 0)."""
    by_label: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_label.setdefault(y, []).append(i)
    others = {y: [j for k, rows in by_label.items() if k != y for j in rows] for y in by_label}
    out: list[tuple[int, int, float]] = []
    for _ in range(iterations):
        for i, y in enumerate(labels):
            same = [j for j in by_label[y] if j != i] or [i]
            out.append((i, rng.choice(same), 1.0))
            if others[y]:
                out.append((i, rng.choice(others[y]), 0.0))
    rng.shuffle(out)
    return out


def encode(model: Any, tokenizer: Any, texts: list[str]) -> Any:
    from adaptd.modeling.probe import extract_features

    ids = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    return extract_features(model, ids, tokenizer.pad_token_id).numpy()


def fresh_model(work: Path, *, rank: int) -> tuple[Any, Any]:
    from adaptd.retraining.trainer import build_model

    spec = TrainSpec(
        base=resolve_base(None),
        labels=LABELS,
        train_file=str(work / "unused.jsonl"),
        out_dir=str(work / "unused"),
        progress_file=str(work / "unused.progress"),
        max_length=MAX_LENGTH,
        rank=rank,
        target_modules=("all-linear",),
    )
    return build_model(spec)


def contrastive(
    model: Any,
    tokenizer: Any,
    rows: list[Example],
    *,
    iterations: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
) -> dict[str, float]:
    """Fine-tune the LoRA weights (not the head) with SetFit's cosine-similarity loss."""
    import torch

    from adaptd.modeling.probe import pad_batch

    torch.manual_seed(seed)
    labels = [LABELS.index(e.label or "") for e in rows]
    todo = pairs(labels, iterations, random.Random(seed))
    ids = tokenizer([e.text for e in rows], truncation=True, max_length=MAX_LENGTH)["input_ids"]
    params = [p for n, p in model.named_parameters() if p.requires_grad and "lora_" in n]
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    steps = (len(todo) + batch_size - 1) // batch_size
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))),
    )
    model.train()
    inner = model.base_model.model  # the PooledClassifier under peft
    started, losses = time.perf_counter(), []
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        a_ids, a_mask = pad_batch([ids[i] for i, _, _ in batch], tokenizer.pad_token_id)
        b_ids, b_mask = pad_batch([ids[j] for _, j, _ in batch], tokenizer.pad_token_id)
        a, _ = inner.features(a_ids, a_mask)
        b, _ = inner.features(b_ids, b_mask)
        target = torch.tensor([t for _, _, t in batch])
        loss = torch.nn.functional.mse_loss(torch.cosine_similarity(a, b), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return {
        "pairs": len(todo),
        "steps": steps,
        "loss_first": round(float(np.mean(losses[:10])), 4),
        "loss_last": round(float(np.mean(losses[-10:])), 4),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.adaptation.contrastive", description=__doc__
    )
    parser.add_argument("--sizes", default="200,400")
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--lr", type=float, default=1e-4, help="LoRA learning rate")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    import torch
    from sklearn.linear_model import LogisticRegression

    torch.set_num_threads(args.threads)
    train_pool, test = split(1500, 1000)
    y_test = np.array([LABELS.index(e.label or "") for e in test])
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="adaptd-contrastive-") as tmp:
        work = Path(tmp)
        # A fresh LoRA starts at zero (peft's B = 0): this model's features are the base's.
        tokenizer, frozen = fresh_model(work, rank=args.rank)
        pool_x = encode(frozen, tokenizer, [e.text for e in train_pool])
        test_x = encode(frozen, tokenizer, [e.text for e in test])
        pool_y = np.array([LABELS.index(e.label or "") for e in train_pool])
        print(  # noqa: T201
            f"held out {len(test)} snippets; LoRA r={args.rank} lr={args.lr}, "
            f"{args.iterations} iterations of pairs, batch {args.batch_size}"
        )
        for size in [int(v) for v in args.sizes.split(",")]:
            for draw in range(args.draws):
                chosen = random.Random(1000 * size + draw).sample(range(len(train_pool)), size)
                rows = [train_pool[i] for i in chosen]
                peer = LogisticRegression(C=1.0, max_iter=3000).fit(pool_x[chosen], pool_y[chosen])
                peer_acc = float(peer.score(test_x, y_test))
                tokenizer, model = fresh_model(work, rank=args.rank)
                stats = contrastive(
                    model,
                    tokenizer,
                    rows,
                    iterations=args.iterations,
                    learning_rate=args.lr,
                    batch_size=args.batch_size,
                    seed=draw,
                )
                tuned_train = encode(model, tokenizer, [e.text for e in rows])
                tuned_test = encode(model, tokenizer, [e.text for e in test])
                head = LogisticRegression(C=1.0, max_iter=3000).fit(tuned_train, pool_y[chosen])
                acc = float(head.score(tuned_test, y_test))
                row = {
                    "rows": size,
                    "draw": draw,
                    "peer": round(peer_acc, 4),
                    "contrastive": round(acc, 4),
                    "gain": round(acc - peer_acc, 4),
                    **stats,
                }
                results.append(row)
                print(json.dumps(row), flush=True)  # noqa: T201
    print("| rows | draws | peer (LR on frozen features) | contrastive + LR | gain |")  # noqa: T201
    print("|---:|---:|---:|---:|---:|")  # noqa: T201
    for size in sorted({r["rows"] for r in results}):
        mine = [r for r in results if r["rows"] == size]
        peer = 100 * np.mean([r["peer"] for r in mine])
        ours = 100 * np.mean([r["contrastive"] for r in mine])
        gains = [100 * r["gain"] for r in mine]
        print(  # noqa: T201
            f"| {size} | {len(mine)} | {peer:.1f}% | {ours:.1f}% | "
            f"{np.mean(gains):+.1f} (each: {', '.join(f'{g:+.1f}' for g in gains)}) |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
