"""Mean-pooled all-MiniLM-L6-v2 embeddings of the demo data, computed once and cached in /tmp.

The gates benchmark simulates candidates with logistic regressions on frozen features, so the
only expensive step is this forward pass; the cache makes every later run take seconds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from adaptd.datasets import demo
from adaptd.datasets.records import Example
from adaptd.modeling.base import load_tokenizer, resolve_base

CACHE = Path(os.environ.get("ADAPTD_BENCH_CACHE", "/tmp/adaptd-bench"))
#: source rows embedded (enough for 1,500 training rows, a 300-row golden set and spares)
SOURCE_ROWS = 4000
MAX_LENGTH = 64


def _embed(texts: list[str], *, batch_size: int = 64) -> np.ndarray:
    import torch
    from transformers import AutoModel

    base = resolve_base(None)
    tokenizer = load_tokenizer(base)
    model = AutoModel.from_pretrained(base).eval()
    torch.set_num_threads(int(os.environ.get("ADAPTD_BENCH_THREADS", "1")))
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=MAX_LENGTH,
                padding=True,
                return_tensors="pt",
            )
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            out[idx] = pooled.numpy()
    return out


def domain(name: str) -> tuple[np.ndarray, np.ndarray, list[Example]]:
    """(embeddings, labels as 0/1 in demo.LABELS order, examples) of ``movies`` or ``tweets``."""
    examples = list(demo.rotten_tomatoes()[:SOURCE_ROWS] if name == "movies" else demo.tweets())
    key = hashlib.sha256("\n".join(e.text for e in examples).encode()).hexdigest()[:16]
    path = CACHE / f"{name}-{key}-L{MAX_LENGTH}.npy"
    if path.is_file():
        x = np.load(path)
    else:
        x = _embed([e.text for e in examples])
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, x)
    y = np.array([demo.LABELS.index(e.label or "") for e in examples])
    return x, y, examples


def daemon_features(base: str, texts: list[str], *, max_length: int = 128) -> np.ndarray:
    """Frozen features of ``texts`` under ``base`` as the daemon's classifier pools them (the
    pooling ``auto`` picks: mean for MiniLM, the last token for a decoder), cached like
    :func:`domain`: what the recipe's linear probe is fitted on."""
    key = hashlib.sha256("\n".join([base, str(max_length), *texts]).encode()).hexdigest()[:16]
    path = CACHE / f"daemon-{key}.npy"
    if path.is_file():
        cached: np.ndarray = np.load(path)
        return cached
    from adaptd.modeling.base import load_classifier
    from adaptd.modeling.probe import extract_features

    tokenizer = load_tokenizer(base)
    model = load_classifier(base, demo.LABELS, tokenizer=tokenizer)
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    x: np.ndarray = extract_features(model, ids, tokenizer.pad_token_id).numpy()
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


if __name__ == "__main__":
    for name in ("tweets", "movies"):
        print(name, domain(name)[0].shape)  # noqa: T201
