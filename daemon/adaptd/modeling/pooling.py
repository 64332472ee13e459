"""Which token states the classifier head reads: ``cls``, ``mean`` or ``last``.

A head must read the sentence vector the base was trained to produce. Sentence-transformers
checkpoints such as all-MiniLM-L6-v2 are trained through mean pooling; BERT's CLS *pooler*
(what ``AutoModelForSequenceClassification`` reads) is left over from pre-training and carries
far less: on movie snippets a frozen CLS probe is 4-6 points below a mean-pooled one
(PERFORMANCE.md section 11). Decoder LLMs attend causally, so only the last real token has seen
the whole text. ``auto`` follows those facts; the choice and the reason are kept together so
startup logs and status can show why.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

logger = logging.getLogger(__name__)

Pooling = Literal["cls", "mean", "last"]
PoolingSetting = Literal["auto", "cls", "mean", "last"]
POOLINGS: tuple[str, ...] = get_args(Pooling)

#: What adapters saved before adaptd recorded the pooling (or trained elsewhere with
#: ``AutoModelForSequenceClassification``) read: the CLS pooler on encoders, the last real token
#: on decoders.
LEGACY_REASON = "no pooling recorded: the AutoModelForSequenceClassification head"

_ST_MODES = {
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_cls_token": "cls",
    "pooling_mode_lasttoken": "last",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolingChoice:
    pooling: Pooling
    #: one line for logs and status: where the choice came from
    reason: str


def legacy_pooling(is_decoder: bool) -> Pooling:
    return "last" if is_decoder else "cls"


def sentence_transformers_pooling(model_dir: Path) -> tuple[Pooling | None, str] | None:
    """The pooling a sentence-transformers directory declares (``modules.json`` naming a
    ``Pooling`` module, whose ``config.json`` sets ``pooling_mode_*``), or None when it has none.

    Returns ``(None, why)`` when it declares one we cannot reproduce (max, weighted mean).
    """
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        entry = next(
            m for m in modules if str(m.get("type", "")).endswith(".Pooling") and "path" in m
        )
        config_file = model_dir / str(entry["path"]) / "config.json"
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except StopIteration:
        return None
    except (OSError, ValueError, TypeError, AttributeError) as e:
        return None, f"unreadable sentence-transformers pooling config in {model_dir}: {e}"
    chosen = [mode for key, mode in _ST_MODES.items() if config.get(key)]
    where = f"{config_file.parent.name}/config.json"
    if len(chosen) == 1 and not any(
        config.get(k) for k in ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    ):
        return chosen[0], f"sentence-transformers {where} sets {chosen[0]} pooling"  # type: ignore[return-value]
    enabled = sorted(k for k, v in config.items() if k.startswith("pooling_mode_") and v)
    return None, f"sentence-transformers {where} sets {enabled}, which adaptd cannot reproduce"


def choose_pooling(
    setting: PoolingSetting, *, model_dir: Path | None, model_type: str, is_decoder: bool
) -> PoolingChoice:
    """Resolve ``model.pooling`` for a base: the setting itself unless it is ``auto``."""
    if setting != "auto":
        return PoolingChoice(pooling=setting, reason="set in model.pooling")
    declared = sentence_transformers_pooling(model_dir) if model_dir is not None else None
    if declared is not None and declared[0] is not None:
        return PoolingChoice(pooling=declared[0], reason=f"auto: {declared[1]}")
    prefix = f"auto: {declared[1]}; " if declared is not None else "auto: "
    if is_decoder:
        return PoolingChoice(
            pooling="last",
            reason=f"{prefix}decoder LLM ({model_type}): only the last real token has seen the "
            "whole text",
        )
    return PoolingChoice(
        pooling="mean",
        reason=f"{prefix}encoder ({model_type}) without a pooling config: mean over tokens "
        "(a CLS pooler is rarely trained for sentence meaning)",
    )


def pool(hidden: Any, mask: Any, pooling: Pooling, pooler_output: Any = None) -> Any:
    """The sentence vector from the last hidden states ``(batch, seq, dim)`` and the attention
    mask ``(batch, seq)``; ``cls`` uses the base's own pooler output when it has one (BERT's
    dense+tanh over the first token), as ``AutoModelForSequenceClassification`` does."""
    import torch

    if pooling == "cls":
        return pooler_output if pooler_output is not None else hidden[:, 0]
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    # Right padding: the last real token is at (number of real tokens - 1).
    last = (mask.sum(dim=1) - 1).clamp(min=0).long()
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
