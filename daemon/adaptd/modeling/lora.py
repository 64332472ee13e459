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


#: ``adapter_config.json`` keys that leave what a trained LoRA computes at inference unchanged
#: (which layers carry LoRA is read from the tensors saved; the rest is training-time only)
_INERT_CONFIG_KEYS = frozenset(
    {
        "auto_mapping",
        "base_model_name_or_path",
        "exclude_modules",
        "inference_mode",
        "layers_pattern",
        "layers_to_transform",
        "lora_alpha",
        "lora_dropout",
        "megatron_core",
        "modules_to_save",
        "peft_type",
        "peft_version",
        "qalora_group_size",
        "r",
        "revision",
        "target_modules",
        "task_type",
        "use_rslora",
    }
)
#: initialisations that leave the base weights as they are (PiSSA, OLoRA, LoftQ, CorDA rewrite
#: them, so their adapters only make sense on the base peft rebuilds for them)
_PLAIN_INITS = (True, False, "gaussian")
PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True, slots=True, kw_only=True)
class PlainLora:
    """A saved LoRA adapter as plain tensors: per layer ``(A, s·B)``, and the head's weights.

    What :func:`adaptd.modeling.sharing.attach_plain` needs to build a serving version without
    peft's injection."""

    #: module path (as in the classifier) -> (A of shape (r, in), B·scaling of shape (out, r))
    layers: dict[str, tuple[Any, Any]]
    #: the trained head's parameters by name (``weight``, ``bias``)
    head: dict[str, Any]


def read_plain_lora(adapter_dir: Path, *, head: str, device: str = "cpu") -> PlainLora | None:
    """The adapter in ``adapter_dir`` as :class:`PlainLora`, or None when it is anything else
    than plain LoRA on linear layers with the head in ``modules_to_save`` (DoRA, LoRA bias,
    rank or alpha patterns, embeddings, a base-rewriting initialisation, a config key this
    version does not know): peft's own loading then builds it.

    Why read the files directly: peft's ``from_pretrained`` spends most of a serving build
    (injecting a LoRA layer per target, then loading its state dict: 25-29 ms of the 61 ms a
    MiniLM build costs on one core, all of it holding the GIL), and a build runs beside the
    batcher (bench/serving/README.md, "A build without peft")."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = read_adapter_config(adapter_dir)
    if config.get("peft_type") != "LORA" or config.get("init_lora_weights", True) not in (
        _PLAIN_INITS
    ):
        return None
    for key, value in config.items():
        if key in _INERT_CONFIG_KEYS or key == "init_lora_weights":
            continue
        if value and value != "none":  # fan_in_fan_out, use_dora, lora_bias, rank_pattern, ...
            return None
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if not isinstance(rank, int) or rank <= 0 or not isinstance(alpha, int | float):
        return None
    scaling = alpha / rank**0.5 if config.get("use_rslora") else alpha / rank
    path = adapter_dir / "adapter_model.safetensors"
    try:
        tensors = load_file(str(path), device=device)
    except (OSError, SafetensorError) as e:
        raise IncompatibleAdapterError(f"{path}: unreadable: {e}") from e
    a_of: dict[str, Any] = {}
    b_of: dict[str, Any] = {}
    head_params: dict[str, Any] = {}
    for key, tensor in tensors.items():
        if not key.startswith(PEFT_PREFIX):
            return None
        name = key[len(PEFT_PREFIX) :]
        if name.endswith(".lora_A.weight"):
            a_of[name[: -len(".lora_A.weight")]] = tensor
        elif name.endswith(".lora_B.weight"):
            b_of[name[: -len(".lora_B.weight")]] = tensor
        elif name in (f"{head}.weight", f"{head}.bias"):
            head_params[name[len(head) + 1 :]] = tensor
        else:
            return None
    if a_of.keys() != b_of.keys() or "weight" not in head_params:
        return None
    layers = {}
    for name, a in a_of.items():
        b = b_of[name]
        if a.dim() != 2 or b.dim() != 2 or a.shape[0] != rank or b.shape[1] != rank:
            raise IncompatibleAdapterError(
                f"{path}: {name}: lora_A {tuple(a.shape)} and lora_B {tuple(b.shape)} "
                f"do not have rank r={rank}"
            )
        layers[name] = (a, b * scaling)  # as peft's forward scales it, before any dtype cast
    return PlainLora(layers=layers, head=head_params)
