"""Tiny random models built from small configs, for tests and quick benchmarks.

They reuse the shipped MiniLM tokenizer (vocabulary only), so they tokenize real text; the
weights are random, which is all speed and plumbing tests need.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from adaptd.modeling.base import resolve_base

_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


def build_tiny_model(
    out_dir: Path,
    arch: Literal["bert", "gpt2", "llama"] = "bert",
    *,
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny model (config, weights, tokenizer) to ``out_dir`` and return it."""
    import torch
    from transformers import (
        AutoModel,
        BertConfig,
        GPT2Config,
        LlamaConfig,
    )

    source = Path(resolve_base(None))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in _TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, out_dir / name)
    vocab = 30522  # the MiniLM (BERT uncased) vocabulary
    torch.manual_seed(seed)
    config: Any
    if arch == "bert":
        config = BertConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=hidden * 2,
            max_position_embeddings=512,
        )
    elif arch == "gpt2":
        config = GPT2Config(
            vocab_size=vocab,
            n_embd=hidden,
            n_layer=layers,
            n_head=2,
            n_positions=512,
            # GPT-2's own special ids (50256) are outside the BERT vocabulary we borrow.
            bos_token_id=101,
            eos_token_id=102,
            pad_token_id=0,
        )
    else:
        config = LlamaConfig(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=101,
            eos_token_id=102,
            pad_token_id=0,
        )
    AutoModel.from_config(config).save_pretrained(str(out_dir), safe_serialization=True)
    return out_dir
