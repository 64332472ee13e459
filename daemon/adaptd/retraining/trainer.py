"""The fine-tune itself: a plain torch loop over a peft LoRA model, run inside a child process.

No Hugging Face ``Trainer``: on 2 CPU cores its per-step overhead (callbacks, accelerate, logging)
is measurable, and we need little of it. What the loop does:

- texts are tokenized once, without padding; batches are built from length-sorted chunks and
  padded to their own longest text (dynamic padding: cost scales with the real length);
- weighted cross-entropy (class and group weights come from dataset assembly);
- AdamW over the trainable parameters only (LoRA matrices and the ``modules_to_save`` head, or
  the head alone in head-only mode), warmup then linear or cosine decay;
- a dev split carved from the training data decides early stopping; the best epoch's trainable
  weights are restored before saving;
- the adapter is saved into ``out_dir`` only at the very end: a run that dies leaves no adapter.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adaptd.retraining.spec import Progress, TrainResult, TrainSpec

logger = logging.getLogger(__name__)

#: batches are drawn from chunks of this many batches sorted by length
_BUCKET_BATCHES = 50


def write_train_file(path: Path, rows: Sequence[tuple[str, str, float]]) -> None:
    """(text, label, weight) rows as JSONL, the trainer's input format."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for text, label, weight in rows:
            f.write(json.dumps({"text": text, "label": label, "weight": weight}) + "\n")


def read_train_file(path: Path) -> list[tuple[str, str, float]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                d = json.loads(line)
                rows.append((str(d["text"]), str(d["label"]), float(d.get("weight", 1.0))))
    return rows


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) of ``total``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return max(0.0, 1.0 - progress)


def length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort chunks by length, cut into batches, shuffle the batches: little padding,
    still a different order every epoch."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * _BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


def build_model(spec: TrainSpec) -> tuple[Any, Any]:
    """Tokenizer and the peft model to train, warm-started or fresh, head-only or LoRA."""
    from adaptd.modeling.base import load_classifier, load_tokenizer
    from adaptd.modeling.lora import LoraSpec, load_adapter, new_adapter

    tokenizer = load_tokenizer(spec.base)
    model = load_classifier(spec.base, spec.labels, tokenizer=tokenizer)
    if spec.warm_start:
        model = load_adapter(model, Path(spec.warm_start), trainable=True)
    else:
        lora = LoraSpec(
            rank=spec.rank,
            alpha=spec.alpha,
            dropout=spec.dropout,
            target_modules=spec.target_modules,
        )
        model = new_adapter(model, lora)
    if spec.head_only:
        for name, param in model.named_parameters():
            param.requires_grad = "modules_to_save" in name
    return tokenizer, model


def _pad(batch: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    import torch

    width = max(len(ids) for ids in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, ids in enumerate(batch):
        input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[row, : len(ids)] = 1
    return input_ids, mask


def train(spec: TrainSpec, report: Callable[[Progress], None]) -> TrainResult:
    """Run the fine-tune described by ``spec``; saves the adapter to ``spec.out_dir``."""
    import torch
    import torch.nn.functional as F  # noqa: N812 - the usual torch spelling

    from adaptd.modeling.lora import save_adapter

    torch.set_num_threads(spec.threads)
    random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    rng = random.Random(spec.seed)

    rows = read_train_file(Path(spec.train_file))
    label_index = {label: i for i, label in enumerate(spec.labels)}
    rng.shuffle(rows)
    n_dev = round(spec.dev_fraction * len(rows)) if spec.early_stopping_patience else 0
    n_dev = n_dev if len(rows) - n_dev >= 2 else 0
    dev_rows, train_rows = rows[:n_dev], rows[n_dev:]

    tokenizer, model = build_model(spec)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def encode(items: list[tuple[str, str, float]]) -> tuple[list[list[int]], Any, Any]:
        ids = tokenizer([t for t, _, _ in items], truncation=True, max_length=spec.max_length)[
            "input_ids"
        ]
        labels = torch.tensor([label_index[lb] for _, lb, _ in items], dtype=torch.long)
        weights = torch.tensor([w for _, _, w in items], dtype=torch.float32)
        return ids, labels, weights

    train_ids, train_y, train_w = encode(train_rows)
    dev_ids: list[list[int]] = []
    dev_y: Any = None
    dev_w: Any = None
    if dev_rows:
        dev_ids, dev_y, dev_w = encode(dev_rows)
    lengths = [len(ids) for ids in train_ids]

    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    steps_per_epoch = math.ceil(len(train_ids) / spec.batch_size)
    total = steps_per_epoch * spec.epochs
    warmup = round(spec.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, spec.schedule)
    )

    def dev_loss() -> float | None:
        if not dev_ids:
            return None
        model.eval()
        total_loss, total_weight = 0.0, 0.0
        with torch.inference_mode():
            for start in range(0, len(dev_ids), spec.batch_size * 2):
                ids, mask = _pad(dev_ids[start : start + spec.batch_size * 2], pad_id)
                logits = model(input_ids=ids, attention_mask=mask).logits
                y = dev_y[start : start + spec.batch_size * 2]
                w = dev_w[start : start + spec.batch_size * 2]
                total_loss += float((F.cross_entropy(logits, y, reduction="none") * w).sum())
                total_weight += float(w.sum())
        model.train()
        return total_loss / total_weight

    best_loss: float | None = None
    best_state: dict[str, Any] | None = None
    stale = 0
    step = 0
    epochs_run = 0
    stopped_early = False
    seen = 0
    running = 0.0
    started = time.perf_counter()
    model.train()
    for epoch in range(1, spec.epochs + 1):
        epochs_run = epoch
        for batch in length_batches(lengths, spec.batch_size, rng):
            ids, mask = _pad([train_ids[i] for i in batch], pad_id)
            logits = model(input_ids=ids, attention_mask=mask).logits
            per_example = F.cross_entropy(logits, train_y[batch], reduction="none")
            loss = (per_example * train_w[batch]).mean()
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            seen += len(batch)
            value = float(loss.detach())
            running = 0.9 * running + 0.1 * value if step > 1 else value
            if step % spec.report_every == 0 or step == total:
                elapsed = time.perf_counter() - started
                report(
                    Progress(
                        epoch=epoch,
                        epochs=spec.epochs,
                        step=step,
                        steps=total,
                        loss=round(running, 5),
                        samples_per_s=round(seen / elapsed, 2) if elapsed else 0.0,
                    )
                )
        current = dev_loss()
        if current is not None:
            logger.info("epoch %d: dev loss %.4f", epoch, current)
            if best_loss is None or current < best_loss:
                best_loss, stale = current, 0
                best_state = {
                    n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
                }
            else:
                stale += 1
                if spec.early_stopping_patience and stale >= spec.early_stopping_patience:
                    stopped_early = True
                    break
    train_seconds = time.perf_counter() - started
    if best_state is not None:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in best_state:
                    param.copy_(best_state[name])
    model.eval()
    predictions: dict[str, dict[str, list[int]]] = {}
    scores: dict[str, dict[str, Any]] = {}
    if spec.eval_file:
        from adaptd.retraining.scoring import read_eval_file, score_candidate, score_champion

        report(
            Progress(
                epoch=epochs_run,
                epochs=spec.epochs,
                step=step,
                steps=total,
                loss=round(running, 5),
                samples_per_s=round(seen / train_seconds, 2) if train_seconds else 0.0,
                phase="validate",
            )
        )
        slices = read_eval_file(Path(spec.eval_file))
        predictions["candidate"], scores = score_candidate(
            model, tokenizer, slices, max_length=spec.max_length
        )
        if spec.champion:
            predictions["champion"] = score_champion(
                spec.base, spec.labels, Path(spec.champion), slices, max_length=spec.max_length
            )
    save_adapter(
        model,
        Path(spec.out_dir),
        spec.labels,
        {
            "trained_on": len(train_rows),
            "warm_start": spec.warm_start,
            "head_only": spec.head_only,
            "seed": spec.seed,
        },
    )
    return TrainResult(
        adapter_dir=spec.out_dir,
        epochs_run=epochs_run,
        steps=step,
        samples=seen,
        train_seconds=round(train_seconds, 3),
        samples_per_s=round(seen / train_seconds, 2) if train_seconds else 0.0,
        best_dev_loss=None if best_loss is None else round(best_loss, 6),
        stopped_early=stopped_early,
        trainable_params=trainable,
        predictions=predictions,
        scores=scores,
    )
