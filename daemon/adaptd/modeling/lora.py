"""LoRA adapters in the standard PEFT layout, classification head in ``modules_to_save``.

Any tool that reads PEFT adapters (peft, vLLM, the Hub) can load what we save: the directory has
``adapter_config.json`` and ``adapter_model.safetensors``; the head travels inside the latter.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adaptd.errors import IncompatibleAdapterError


@dataclass(frozen=True, slots=True, kw_only=True)
class LoraSpec:
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.1
    #: None lets peft pick the usual attention projections for the architecture
    target_modules: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def new_adapter(model: Any, spec: LoraSpec) -> Any:
    """Wrap ``model`` with a fresh LoRA adapter; peft adds the classifier head to modules_to_save
    for the SEQ_CLS task type (``classifier`` for BERT, ``score`` for decoder LLMs)."""
    from peft import LoraConfig, TaskType, get_peft_model

    targets: list[str] | str | None = list(spec.target_modules) if spec.target_modules else None
    if targets == ["all-linear"]:
        # peft's architecture-independent spelling (every linear layer but the head) is a plain
        # string; inside a list it would name a module called "all-linear".
        targets = "all-linear"
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=spec.rank,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        target_modules=targets,
    )
    return get_peft_model(model, config)


def load_adapter(model: Any, adapter_dir: Path, *, trainable: bool = False) -> Any:
    """Attach a saved adapter to a freshly loaded base model."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=trainable)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise IncompatibleAdapterError(f"{adapter_dir}: cannot load adapter: {e}") from e


def read_adapter_config(adapter_dir: Path) -> dict[str, Any]:
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        raise IncompatibleAdapterError(
            f"{adapter_dir}: no adapter_config.json (not a PEFT adapter)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise IncompatibleAdapterError(f"{path}: unreadable: {e}") from e
    if not isinstance(data, dict):
        raise IncompatibleAdapterError(f"{path}: not a JSON object")
    return data


def adapter_labels(adapter_dir: Path) -> tuple[str, ...] | None:
    """The label names an adapter was trained for, if it recorded them (adaptd does)."""
    path = adapter_dir / "adaptd.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise IncompatibleAdapterError(f"{path}: unreadable: {e}") from e
    labels = data.get("labels")
    return tuple(labels) if isinstance(labels, list) else None


def classifier_of(model: Any) -> Any:
    """The :class:`PooledClassifier` inside a peft model (or the model itself)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner


def save_adapter(model: Any, out_dir: Path, labels: Sequence[str], meta: dict[str, Any]) -> None:
    """Save in the PEFT layout plus ``adaptd.json`` beside it: labels and lineage, and the head
    (pooling, head module, base type) so serving, retraining and import read it the same way."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # We never adapt the embeddings; saying so skips peft's look for the base's config.json
    # (a GGUF base has none, and peft would otherwise try the Hub).
    model.save_pretrained(str(out_dir), safe_serialization=True, save_embedding_layers=False)
    inner = classifier_of(model)
    head = {
        "pooling": inner.pooling,
        "head": inner.head_name,
        "base_model_type": str(inner.config.model_type),
    }
    (out_dir / "adaptd.json").write_text(
        json.dumps({"labels": list(labels), **head, **meta}, indent=2, sort_keys=True),
        encoding="utf-8",
    )
