"""The PEFT adapter directory: which files define a version, its content hash, and whether it fits
a base model and a label set.

Everything here reads ``adapter_config.json``, ``adaptd.json`` and the safetensors *header* (names
and shapes), never the tensors and never a model, so checking an adapter costs milliseconds and
works in the CLI, where loading the base model would cost seconds and memory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adaptd.errors import IncompatibleAdapterError
from adaptd.modeling.base import BaseModelInfo
from adaptd.modeling.lora import read_adapter_config
from adaptd.modeling.pooling import LEGACY_REASON, POOLINGS, legacy_pooling

logger = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTD_META = "adaptd.json"
#: The files that define a version. Anything else in a directory (README.md model cards,
#: tokenizer copies, training_args.bin) is neither hashed nor copied into the registry.
DEFINING_FILES = (ADAPTD_META, ADAPTER_CONFIG, ADAPTER_WEIGHTS)
REQUIRED_FILES = (ADAPTER_CONFIG, ADAPTER_WEIGHTS)

_CHUNK = 1 << 20
# peft saves "base_model.model.<module path>.lora_A.weight" (the adapter name stripped).
_PEFT_PREFIX = "base_model.model."
_LORA_KEY = re.compile(r"^(?P<module>.+)\.lora_(?P<part>A|B|embedding_A|embedding_B)(?:\.weight)?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterSummary:
    """What an adapter is, read from its files."""

    rank: int
    alpha: float
    #: module names (suffixes) LoRA was applied to; a single regex when ``targets_regex``
    target_modules: tuple[str, ...]
    targets_regex: bool
    modules_to_save: tuple[str, ...]
    #: the classifier head's output weight, e.g. ``classifier.weight`` of shape (labels, hidden)
    head: str
    head_shape: tuple[int, ...]
    #: the label names recorded in ``adaptd.json``; None for an adapter trained elsewhere
    labels: tuple[str, ...] | None
    n_params: int
    base_model: str | None
    files: tuple[str, ...]
    #: the pooling the head was trained on (recorded in ``adaptd.json``, else the legacy head's)
    pooling: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-native (lists, not tuples), so it reads back from the store unchanged."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def adapter_files(adapter_dir: Path) -> list[Path]:
    """The defining files present in ``adapter_dir``, sorted by name; the required ones must be."""
    if not adapter_dir.is_dir():
        raise IncompatibleAdapterError(f"{adapter_dir}: not a directory")
    for name in REQUIRED_FILES:
        if not (adapter_dir / name).is_file():
            raise IncompatibleAdapterError(f"{adapter_dir}: {_missing(adapter_dir, name)}")
    return sorted(
        (adapter_dir / name for name in DEFINING_FILES if (adapter_dir / name).is_file()),
        key=lambda p: p.name,
    )


def _missing(adapter_dir: Path, name: str) -> str:
    if name == ADAPTER_CONFIG:
        return f"no {ADAPTER_CONFIG} (not a PEFT adapter directory)"
    if (adapter_dir / "adapter_model.bin").is_file():
        return (
            f"no {ADAPTER_WEIGHTS}: pickled adapter_model.bin is not accepted "
            "(re-save it with save_pretrained(..., safe_serialization=True))"
        )
    return f"no {ADAPTER_WEIGHTS}"


def content_hash(adapter_dir: Path) -> str:
    """The version id: sha256 over the defining files in name order, each as
    ``name NUL size NUL bytes``, in 64 hex characters.

    Sizes frame the contents so two different directories can never hash alike by shifting bytes
    from one file into the next; README.md and other extra files do not count.
    """
    digest = hashlib.sha256()
    for path in adapter_files(adapter_dir):
        size = path.stat().st_size
        digest.update(f"{path.name}\0{size}\0".encode())
        read = 0
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                read += len(chunk)
        if read != size:
            raise IncompatibleAdapterError(f"{path}: changed while it was being hashed")
    return digest.hexdigest()


def read_meta(adapter_dir: Path) -> dict[str, Any]:
    """``adaptd.json`` (labels and lineage written by adaptd), or {} for an outside adapter."""
    path = adapter_dir / ADAPTD_META
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IncompatibleAdapterError(f"{path}: unreadable: {e}") from e
    if not isinstance(data, dict):
        raise IncompatibleAdapterError(f"{path}: not a JSON object")
    return data


def read_shapes(adapter_dir: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the safetensors header; a damaged file is refused here."""
    from safetensors import SafetensorError, safe_open

    path = adapter_dir / ADAPTER_WEIGHTS
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError) as e:
        raise IncompatibleAdapterError(f"{path}: corrupted safetensors file: {e}") from e


def _module_of(key: str) -> str:
    return key.removeprefix(_PEFT_PREFIX)


def _names(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(sorted(str(v) for v in value))


def _under(module: str, names: Sequence[str]) -> bool:
    """Whether ``module`` lies inside one of the ``modules_to_save`` (peft matches by suffix)."""
    parts = module.split(".")
    return any(name in parts or module.endswith("." + name) or module == name for name in names)


def _find_head(
    adapter_dir: Path, shapes: Mapping[str, tuple[int, ...]], saved: Sequence[str]
) -> tuple[str, tuple[int, ...]]:
    candidates = {
        _module_of(key): shape
        for key, shape in shapes.items()
        if key.endswith(".weight")
        and len(shape) == 2
        and not _LORA_KEY.match(_module_of(key))
        and _under(_module_of(key).removesuffix(".weight"), saved)
    }
    if not candidates:
        raise IncompatibleAdapterError(
            f"{adapter_dir}: no classifier head saved in {ADAPTER_WEIGHTS} "
            f"(modules_to_save is {list(saved)}); serving it would use a random head"
        )
    # RoBERTa-style heads are dense -> out_proj; the output layer is the one with the label
    # dimension, which is the smallest out dimension whenever the hidden size exceeds the labels.
    for name, shape in candidates.items():
        if name.endswith("out_proj.weight"):
            return name, shape
    name = min(candidates, key=lambda n: (candidates[n][0], n))
    return name, candidates[name]


def _check_type(
    adapter_dir: Path, config: Mapping[str, Any], meta: Mapping[str, Any], base: BaseModelInfo
) -> None:
    recorded = meta.get("base_model_type")
    source = f"{ADAPTD_META} base_model_type"
    origin = config.get("base_model_name_or_path")
    # Only an absolute path names the same directory here as where the adapter was trained; a
    # relative one would be read against whatever our working directory happens to be.
    if recorded is None and isinstance(origin, str) and Path(origin).is_absolute():
        origin_config = Path(origin) / "config.json"
        try:
            if origin_config.is_file():
                recorded = json.loads(origin_config.read_text(encoding="utf-8")).get("model_type")
                source = f"base_model_name_or_path {origin}"
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            logger.debug("cannot read %s; base model type not compared", origin_config)
    if recorded is not None and str(recorded) != base.model_type:
        raise IncompatibleAdapterError(
            f"{adapter_dir}: trained on a {recorded} base model ({source}); "
            f"the base model is {base.model_type} ({base.path})"
        )


def _check_targets(
    adapter_dir: Path,
    targets: tuple[str, ...],
    regex: bool,
    lora_modules: Collection[str],
    base_modules: Collection[str],
    base: BaseModelInfo,
) -> None:
    if regex:
        pattern = re.compile(targets[0])
        if not any(pattern.fullmatch(m) for m in base_modules):
            raise IncompatibleAdapterError(
                f"{adapter_dir}: target_modules pattern {targets[0]!r} matches no module of the "
                f"base model ({base.model_type})"
            )
    elif targets != ("all-linear",):
        absent = [
            t for t in targets if not any(m == t or m.endswith("." + t) for m in base_modules)
        ]
        if absent:
            raise IncompatibleAdapterError(
                f"{adapter_dir}: target modules absent from the base model ({base.model_type}): "
                f"{absent}"
            )
    unknown = sorted(m for m in lora_modules if m not in base_modules)
    if unknown:
        raise IncompatibleAdapterError(
            f"{adapter_dir}: LoRA weights for modules the base model ({base.model_type}) does not "
            f"have: {unknown[:3]}{' ...' if len(unknown) > 3 else ''}"
        )


def _check_shapes(
    adapter_dir: Path,
    shapes: Mapping[str, tuple[int, ...]],
    head: str,
    head_shape: tuple[int, ...],
    base_shapes: Mapping[str, tuple[int, ...]],
) -> None:
    """LoRA factors and the head must fit the base layers they attach to: an adapter trained for a
    bigger sibling of the same architecture passes every name check and fails only here."""
    for key, shape in shapes.items():
        match = _LORA_KEY.match(_module_of(key))
        if match is None or match["part"] not in {"A", "B"} or len(shape) != 2:
            continue
        module = match["module"]
        io = base_shapes.get(module, ())
        if len(io) != 2:
            continue
        side, want, got = (
            ("in", io[0], shape[1]) if match["part"] == "A" else ("out", io[1], shape[0])
        )
        if want != got:
            raise IncompatibleAdapterError(
                f"{adapter_dir}: {_module_of(key)} has {side} features {got}, the base model's "
                f"{module} has {want} (trained on a different base model?)"
            )
    io = base_shapes.get(head.removesuffix(".weight"), ())
    if len(io) == 2 and head_shape[1] != io[0]:
        raise IncompatibleAdapterError(
            f"{adapter_dir}: classifier head {head} takes {head_shape[1]} features, "
            f"the base model's {head.removesuffix('.weight')} takes {io[0]} "
            "(trained on a different base model?)"
        )


def _check_pooling(adapter_dir: Path, meta: Mapping[str, Any], base: BaseModelInfo) -> str:
    """The head reads one pooled vector; a head trained on another pooling would serve nonsense
    without any shape error, so the pooling must match exactly."""
    recorded = meta.get("pooling")
    if recorded is not None and recorded not in POOLINGS:
        raise IncompatibleAdapterError(
            f"{adapter_dir}: {ADAPTD_META} records pooling {recorded!r}; known: {list(POOLINGS)}"
        )
    pooling = str(recorded) if recorded is not None else legacy_pooling(base.is_decoder)
    how = (
        f"{ADAPTD_META} records pooling {pooling!r}"
        if recorded is not None
        else f"{LEGACY_REASON}, which reads {pooling!r}"
    )
    if pooling != base.pooling:
        raise IncompatibleAdapterError(
            f"{adapter_dir}: trained with {pooling} pooling ({how}); the base model pools by "
            f"{base.pooling} ({base.pooling_reason}). Set model.pooling: {pooling} to use it, "
            "or retrain it"
        )
    if recorded is None:
        logger.info("%s: %s; treated as %s pooling", adapter_dir, LEGACY_REASON, pooling)
    return pooling


def check_compatible(
    adapter_dir: Path,
    base: BaseModelInfo,
    labels: Sequence[str],
    *,
    base_module_names: Collection[str] | None = None,
) -> AdapterSummary:
    """Check that ``adapter_dir`` can serve on ``base`` with ``labels``, and describe it.

    ``base_module_names`` (every module name of the classifier built on the base, see
    :func:`adaptd.modeling.base.base_module_shapes`) enables the target-module checks; when it is
    a mapping of name to ``(in_features, out_features)`` the LoRA and head shapes are checked too.
    Raises :class:`IncompatibleAdapterError` naming the first mismatch.
    """
    files = adapter_files(adapter_dir)
    config = read_adapter_config(adapter_dir)
    peft_type = config.get("peft_type")
    if peft_type != "LORA":
        raise IncompatibleAdapterError(f"{adapter_dir}: peft_type is {peft_type!r}, not 'LORA'")
    task_type = config.get("task_type")
    if task_type != "SEQ_CLS":
        raise IncompatibleAdapterError(
            f"{adapter_dir}: task_type is {task_type!r}, not 'SEQ_CLS' (a sequence classifier)"
        )
    meta = read_meta(adapter_dir)
    shapes = read_shapes(adapter_dir)
    _check_type(adapter_dir, config, meta, base)

    recorded = meta.get("labels")
    recorded_labels = tuple(str(x) for x in recorded) if isinstance(recorded, list) else None
    wanted = tuple(labels)
    if recorded_labels is not None and recorded_labels != wanted:
        same = sorted(recorded_labels) == sorted(wanted)
        raise IncompatibleAdapterError(
            f"{adapter_dir}: {ADAPTD_META} records labels {list(recorded_labels)}, the configured "
            f"labels are {list(wanted)}"
            + (" (same names in another order: outputs would be mislabelled)" if same else "")
        )

    saved = _names(config.get("modules_to_save"))
    head, head_shape = _find_head(adapter_dir, shapes, saved)
    if head_shape[0] != len(wanted):
        raise IncompatibleAdapterError(
            f"{adapter_dir}: classifier head {head} has {head_shape[0]} outputs "
            f"(shape {list(head_shape)}); the configured label set has {len(wanted)}: "
            f"{list(wanted)}"
        )

    raw_targets = config.get("target_modules")
    regex = isinstance(raw_targets, str) and raw_targets != "all-linear"
    targets = _names(raw_targets)
    rank = config.get("r")
    lora_modules = {m["module"] for k in shapes if (m := _LORA_KEY.match(_module_of(k)))}
    if not lora_modules:
        raise IncompatibleAdapterError(f"{adapter_dir}: {ADAPTER_WEIGHTS} holds no LoRA weights")
    if not isinstance(rank, int) or rank < 1:
        raise IncompatibleAdapterError(f"{adapter_dir}: r is {rank!r}, not a positive integer")
    if not config.get("rank_pattern"):
        for key, shape in shapes.items():
            match = _LORA_KEY.match(_module_of(key))
            if match is not None and match["part"] == "A" and shape and shape[0] != rank:
                raise IncompatibleAdapterError(
                    f"{adapter_dir}: {ADAPTER_CONFIG} says r={rank} but {_module_of(key)} has "
                    f"rank {shape[0]}"
                )
    if base_module_names is not None:
        _check_targets(adapter_dir, targets, regex, lora_modules, base_module_names, base)
        if isinstance(base_module_names, Mapping):
            _check_shapes(adapter_dir, shapes, head, head_shape, base_module_names)
    pooling = _check_pooling(adapter_dir, meta, base)

    return AdapterSummary(
        rank=rank,
        alpha=float(config.get("lora_alpha", rank)),
        target_modules=targets,
        targets_regex=regex,
        modules_to_save=saved,
        head=head,
        head_shape=head_shape,
        labels=recorded_labels,
        n_params=sum(math.prod(s) for s in shapes.values()),
        base_model=config.get("base_model_name_or_path"),
        files=tuple(p.name for p in files),
        pooling=pooling,
    )
