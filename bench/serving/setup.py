"""What every serving benchmark needs: the shipped MiniLM, LoRA adapters for it, real texts."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

LABELS = ("negative", "positive")


def minilm() -> str:
    from adaptd.modeling.base import resolve_base

    return resolve_base(None)


def base_of(name: str) -> str:
    """``minilm``, ``smollm2`` (the GGUF extracted from the data archive) or a model.base path."""
    from adaptd.modeling.base import resolve_base

    if name == "minilm":
        return minilm()
    if name == "smollm2":
        from adaptd.datasets.archives import smollm2_gguf

        return resolve_base(str(smollm2_gguf()))
    return resolve_base(name)


def make_adapter(base: str, out: Path, *, seed: int) -> Path:
    """A LoRA adapter (r=8, query/value, trained head in modules_to_save) as adaptd saves them."""
    import torch

    from adaptd.modeling.base import load_classifier
    from adaptd.modeling.lora import LoraSpec, new_adapter, save_adapter

    torch.manual_seed(seed)
    model = new_adapter(load_classifier(base, LABELS), LoraSpec(rank=8, alpha=16))
    # Non-zero LoRA B so the merge really changes the weights (a fresh adapter's B is zero).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    save_adapter(model, out, LABELS, {})
    return out


def texts(n: int) -> list[str]:
    """Real movie-review snippets from the demo data; repeated when more are asked for."""
    from adaptd.datasets.demo import rotten_tomatoes
    from adaptd.errors import DatasetError

    try:
        pool = [e.text for e in rotten_tomatoes()]
    except DatasetError:
        pool = [f"a sentence of modest length about film number {i}, fine" for i in range(1000)]
    return [pool[i % len(pool)] for i in range(n)]


def sgemm_peak_gflops(seconds: float = 1.0) -> float:
    """The machine's fp32 matmul rate with the current torch thread count."""
    import torch

    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    torch.mm(a, b)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        n += 1
    return 2 * 1024**3 * n / (time.perf_counter() - start) / 1e9


def flops_per_text(model: object, tokenizer: object, items: list[str], max_length: int) -> float:
    """Mean useful FLOPs per text: 2 x matmul params per token plus attention's 4·L²·d per layer
    (unpadded lengths, so padding costs count against us)."""
    import torch

    linear = sum(
        m.weight.numel()
        for m in model.modules()  # type: ignore[attr-defined]
        if isinstance(m, torch.nn.Linear)
    )
    config = model.config  # type: ignore[attr-defined]
    lengths = [
        len(ids)
        for ids in tokenizer(items, truncation=True, max_length=max_length)["input_ids"]  # type: ignore[operator]
    ]
    d, layers = config.hidden_size, config.num_hidden_layers
    total = sum(2 * linear * n + 4 * layers * n * n * d for n in lengths)
    return total / len(lengths)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
