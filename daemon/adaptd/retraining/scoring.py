"""Scoring in the training child: the candidate and the champion predict every evaluation slice.

Doing it in the child keeps every forward pass of a retrain off the daemon's cores and memory
(serving keeps its throughput); the daemon receives only class indices and judges them with
the pure :mod:`adaptd.retraining.validation`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def write_eval_file(path: Path, slices: Mapping[str, Sequence[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for name, texts in slices.items():
            for text in texts:
                f.write(json.dumps({"slice": name, "text": text}) + "\n")


def read_eval_file(path: Path) -> dict[str, list[str]]:
    slices: dict[str, list[str]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                slices.setdefault(str(row["slice"]), []).append(str(row["text"]))
    return slices


def predict_indices(
    model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 64
) -> list[int]:
    """Argmax class index per text, in order; batches sorted by length for little padding."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [0] * len(texts)
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            logits = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
            for i, pred in zip(idx, logits.argmax(dim=-1).tolist(), strict=True):
                out[i] = int(pred)
    return out


def score_slices(
    model: Any, tokenizer: Any, slices: dict[str, list[str]], *, max_length: int
) -> dict[str, list[int]]:
    return {
        name: predict_indices(model, tokenizer, texts, max_length=max_length)
        for name, texts in slices.items()
    }


def score_champion(
    base: str,
    labels: Sequence[str],
    adapter_dir: Path,
    slices: dict[str, list[str]],
    *,
    max_length: int,
    pooling: str = "auto",
) -> dict[str, list[int]]:
    """Load the champion next to nothing else (a fresh base) and score it."""
    from adaptd.modeling.base import load_classifier, load_tokenizer
    from adaptd.modeling.lora import load_adapter

    tokenizer = load_tokenizer(base)
    model = load_adapter(
        load_classifier(base, labels, tokenizer=tokenizer, pooling=pooling),  # type: ignore[arg-type]
        adapter_dir,
    )
    return score_slices(model, tokenizer, slices, max_length=max_length)
