"""Fine-tune samples/s: adaptd's trainer loop vs a bare peft + torch loop, same data, model,
LoRA config, batch size, max length and threads, in the same process one after the other."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from adaptd.datasets.records import Example
from adaptd.modeling.base import load_classifier, load_tokenizer
from adaptd.modeling.lora import LoraSpec, new_adapter
from adaptd.retraining.spec import TrainSpec
from adaptd.retraining.trainer import train, write_train_file

LABELS = ("negative", "positive")


def bare_loop(
    base: str, examples: list[Example], *, batch_size: int, max_length: int, lr: float, seed: int
) -> float:
    """The loop a user would write from the peft docs: random batches padded per batch."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(base)
    model = new_adapter(load_classifier(base, LABELS, tokenizer=tokenizer), LoraSpec())
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr)
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        batch = [examples[i] for i in order[start : start + batch_size]]
        enc = tokenizer(
            [e.text for e in batch],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        y = torch.tensor([LABELS.index(e.label or "") for e in batch])
        loss = F.cross_entropy(model(**enc).logits, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(examples) / (time.perf_counter() - started)


def ours(
    base: str,
    examples: list[Example],
    work: Path,
    *,
    batch_size: int,
    max_length: int,
    lr: float,
    seed: int,
    threads: int,
) -> float:
    write_train_file(work / "train.jsonl", [(e.text, e.label or "", 1.0) for e in examples])
    spec = TrainSpec(
        base=base,
        contrastive="off",  # the fine-tune alone (stage: bench.adaptation.contrastive)
        labels=LABELS,
        train_file=str(work / "train.jsonl"),
        out_dir=str(work / "adapter"),
        progress_file=str(work / "progress.jsonl"),
        epochs=1,
        batch_size=batch_size,
        learning_rate=lr,
        max_length=max_length,
        seed=seed,
        threads=threads,
        early_stopping_patience=None,
    )
    return train(spec, lambda p: None).samples_per_s


def run(
    base: str,
    examples: list[Example],
    work: Path,
    *,
    threads: int,
    max_length: int,
    rounds: int = 2,
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    common = {"batch_size": 16, "max_length": max_length, "lr": 5e-4, "seed": 0}
    # Alternate the two loops and keep each one's best pass: on a shared 2-core machine the
    # load changes from one minute to the next, and it should not decide the ratio.
    bare: list[float] = []
    mine: list[float] = []
    for round_ in range(rounds):
        bare.append(bare_loop(base, examples, **common))
        mine.append(ours(base, examples, work / str(round_), threads=threads, **common))
    return {
        "examples": len(examples),
        "threads": threads,
        "max_length": max_length,
        "rounds": rounds,
        "bare_samples_per_s": [round(v, 2) for v in bare],
        "adaptd_samples_per_s": [round(v, 2) for v in mine],
        "ratio_of_best": round(max(mine) / max(bare), 3),
    }
