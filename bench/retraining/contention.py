"""Serving throughput while a retrain runs: forward passes of the serving model (MiniLM, B=32,
real movie snippets) per second, idle vs while the training child (niced, its own thread
budget) fine-tunes next to it. A proxy for the daemon's serving path, which is not on this branch.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from adaptd.datasets.records import Example
from adaptd.modeling.base import load_classifier, load_tokenizer
from adaptd.retraining.executors import LocalExecutor
from adaptd.retraining.spec import Progress, TrainSpec
from adaptd.retraining.trainer import write_train_file

LABELS = ("negative", "positive")


def serving_rate(model: Any, batches: list[Any], seconds: float) -> float:
    import torch

    done = 0
    started = time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - started < seconds:
            enc = batches[done % len(batches)]
            model(**enc)
            done += 1
    return done * 32 / (time.perf_counter() - started)


def run(
    base: str,
    examples: list[Example],
    work: Path,
    *,
    serving_threads: int,
    training_threads: int,
    seconds: float,
    max_length: int,
) -> dict[str, Any]:
    import torch

    torch.set_num_threads(serving_threads)
    tokenizer = load_tokenizer(base)
    model = load_classifier(base, LABELS, tokenizer=tokenizer)
    texts = [e.text for e in examples]
    batches = [
        tokenizer(
            texts[i : i + 32],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        for i in range(0, 320, 32)
    ]
    idle = serving_rate(model, batches, seconds)

    write_train_file(work / "train.jsonl", [(e.text, e.label or "", 1.0) for e in examples])
    spec = TrainSpec(
        base=base,
        contrastive="off",  # the fine-tune alone (stage: bench.adaptation.contrastive)
        labels=LABELS,
        train_file=str(work / "train.jsonl"),
        out_dir=str(work / "adapter"),
        progress_file=str(work / "progress.jsonl"),
        epochs=20,  # longer than the measurement; cancelled afterwards
        max_length=max_length,
        threads=training_threads,
        early_stopping_patience=None,
    )
    training = threading.Event()
    cancel = threading.Event()
    rate: list[float] = []

    def on_progress(p: Progress) -> None:
        training.set()

    def train() -> None:
        try:
            LocalExecutor().run(spec, timeout_s=600, on_progress=on_progress, cancel=cancel)
        except Exception:  # cancelled on purpose
            training.set()

    thread = threading.Thread(target=train)
    thread.start()
    training.wait(300)
    rate.append(serving_rate(model, batches, seconds))
    cancel.set()
    thread.join()
    return {
        "serving_threads": serving_threads,
        "training_threads": training_threads,
        "idle_seq_per_s": round(idle, 1),
        "during_retrain_seq_per_s": round(rate[0], 1),
        "ratio": round(rate[0] / idle, 3),
    }
