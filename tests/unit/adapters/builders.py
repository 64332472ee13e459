"""Real adapters for the registry tests: tiny random BERT bases and LoRA adapters saved by peft.

Building one costs about a second of CPU, so the test modules build a few per session and derive
cheap variants (a different ``adaptd.json``) when they only need distinct versions.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

LABELS = ("negative", "positive")


def build_base(
    out: Path, *, arch: Literal["bert", "gpt2", "llama"] = "bert", hidden: int = 32
) -> Path:
    import torch

    from adaptd.modeling.tiny import build_tiny_model

    torch.set_num_threads(1)
    return build_tiny_model(out, arch, hidden=hidden)


def build_adapter(
    base: Path,
    out: Path,
    labels: Sequence[str] = LABELS,
    *,
    rank: int = 4,
    target_modules: tuple[str, ...] | None = None,
    meta: dict[str, Any] | None = None,
    plain_peft: bool = False,
    seed: int = 0,
) -> Path:
    """A LoRA adapter with its classifier head, saved as adaptd saves them (``adaptd.json`` with
    the labels and pooling) or, with ``plain_peft``, as any peft user would: on
    ``AutoModelForSequenceClassification`` (BERT's CLS pooler head), with no adaptd.json."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from adaptd.modeling.base import load_classifier
    from adaptd.modeling.lora import LoraSpec, new_adapter, save_adapter

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    if plain_peft:
        model = AutoModelForSequenceClassification.from_pretrained(
            str(base), num_labels=len(labels)
        )
    else:
        model = load_classifier(str(base), labels)
    spec = LoraSpec(rank=rank, alpha=2 * rank, target_modules=target_modules)
    peft_model = new_adapter(model, spec)
    if plain_peft:
        peft_model.save_pretrained(str(out), safe_serialization=True)
    else:
        save_adapter(peft_model, out, labels, meta or {})
    return out


def variant(src: Path, out: Path, tag: str) -> Path:
    """A copy of ``src`` with a different ``adaptd.json``: a distinct version, same weights."""
    shutil.copytree(src, out)
    meta_path = out / "adaptd.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"labels": list(LABELS)}
    meta["variant"] = tag
    meta_path.write_text(json.dumps(meta, sort_keys=True))
    return out


def edit_config(adapter_dir: Path, **changes: Any) -> None:
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def drop_tensors(adapter_dir: Path, needle: str) -> None:
    """Rewrite the safetensors file without the tensors whose name contains ``needle``."""
    from safetensors.torch import load_file, save_file

    path = adapter_dir / "adapter_model.safetensors"
    tensors = {k: v for k, v in load_file(str(path)).items() if needle not in k}
    save_file(tensors, str(path))
