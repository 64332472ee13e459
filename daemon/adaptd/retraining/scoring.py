"""Scoring in the training child: the candidate and the champion predict every evaluation slice.

Doing it in the child keeps every forward pass of a retrain off the daemon's cores and memory
(serving keeps its throughput). The daemon receives class indices of both models, which the
pure :mod:`adaptd.retraining.validation` judges, and the candidate's probabilities and pooled
embeddings, kept as the adapter's monitoring reference if it is promoted.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Scored:
    """What a model said about a list of texts, in their order."""

    predicted: list[int]
    probabilities: list[list[float]]
    #: mean-pooled last hidden state as base64 float16 bytes (the store's encoding); None when
    #: the model gives no hidden states
    embeddings: list[str] | None


def encode_embedding(vector: Any) -> str:
    """float16 bytes, as the serving path logs them, in base64 so they travel as JSON."""
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype=np.float16).tobytes()).decode("ascii")


def decode_embedding(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"))


def score_texts(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    max_length: int,
    batch_size: int = 64,
    embeddings: bool = False,
) -> Scored:
    """Class, probabilities and (optionally) the pooled embedding of each text; batches sorted
    by length for little padding. The embedding is the attention-masked mean of the last hidden
    layer, exactly what serving/batcher.py logs, so a reference row and a live prediction of
    the same adapter are comparable."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    predicted = [0] * len(texts)
    probabilities: list[list[float]] = [[] for _ in texts]
    pooled_out: list[str] | None = [""] * len(texts) if embeddings else None
    device = next(model.parameters()).device
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
            out = model(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                output_hidden_states=embeddings,
            )
            probs = torch.softmax(out.logits.float(), dim=-1).cpu()
            hidden = getattr(out, "hidden_states", None) if embeddings else None
            pooled = None
            if hidden is not None:
                last = hidden[-1].float().cpu()
                mask = enc["attention_mask"].unsqueeze(-1).to(last.dtype)
                pooled = ((last * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)).numpy()
            elif embeddings:
                pooled_out = None
            for row, i in enumerate(idx):
                predicted[i] = int(probs[row].argmax())
                probabilities[i] = [round(float(v), 6) for v in probs[row]]
                if pooled is not None and pooled_out is not None:
                    pooled_out[i] = encode_embedding(pooled[row])
    return Scored(predicted=predicted, probabilities=probabilities, embeddings=pooled_out)


def predict_indices(
    model: Any, tokenizer: Any, texts: Sequence[str], *, max_length: int, batch_size: int = 64
) -> list[int]:
    """Argmax class index per text, in order."""
    return score_texts(
        model, tokenizer, texts, max_length=max_length, batch_size=batch_size
    ).predicted


def score_slices(
    model: Any, tokenizer: Any, slices: dict[str, list[str]], *, max_length: int
) -> dict[str, list[int]]:
    return {
        name: predict_indices(model, tokenizer, texts, max_length=max_length)
        for name, texts in slices.items()
    }


def score_candidate(
    model: Any, tokenizer: Any, slices: dict[str, list[str]], *, max_length: int
) -> tuple[dict[str, list[int]], dict[str, dict[str, Any]]]:
    """The candidate's classes per slice (for the gates) and, per slice, its probabilities and
    pooled embeddings (stored as its monitoring reference if it is promoted)."""
    predictions: dict[str, list[int]] = {}
    scores: dict[str, dict[str, Any]] = {}
    for name, texts in slices.items():
        scored = score_texts(model, tokenizer, texts, max_length=max_length, embeddings=True)
        predictions[name] = scored.predicted
        scores[name] = {"probabilities": scored.probabilities, "embeddings": scored.embeddings}
    return predictions, scores


def score_champion(
    base: str,
    labels: Sequence[str],
    adapter_dir: Path,
    slices: dict[str, list[str]],
    *,
    max_length: int,
    pooling: str = "auto",
    safetensors_only: bool = True,
    device: str = "cpu",
    dtype: str = "float32",
) -> dict[str, list[int]]:
    """Load the champion next to nothing else (a fresh base) and score it, on the device and in
    the precision the candidate was scored with."""
    from adaptd.modeling.base import load_classifier, load_tokenizer
    from adaptd.modeling.lora import load_adapter

    tokenizer = load_tokenizer(base)
    classifier = load_classifier(
        base,
        labels,
        tokenizer=tokenizer,
        pooling=pooling,  # type: ignore[arg-type]
        safetensors_only=safetensors_only,
        dtype=dtype,  # type: ignore[arg-type]
    )
    model = load_adapter(classifier, adapter_dir).to(device)
    return score_slices(model, tokenizer, slices, max_length=max_length)
