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


def _byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode table: the 256 symbols a byte-level BPE vocabulary starts from."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += range(ord("®"), ord("ÿ") + 1)
    codes = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def build_tiny_gguf(out_file: Path, *, hidden: int = 16, layers: int = 1, seed: int = 0) -> Path:
    """Write a tiny random Llama as a single ``.gguf`` file, tokenizer included (byte-level BPE
    with SmolLM2's special tokens), laid out as llama.cpp writes one: what ``model.base`` accepts
    for the SmolLM2 GGUF, in 30 kB instead of 98 MB."""
    import gguf
    import numpy as np

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tokens = specials + _byte_alphabet() + ["he", "Ġt"]
    rng = np.random.default_rng(seed)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_file), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(128)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(hidden * 2)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_rope_freq_base(10000.0)
    writer.add_rope_dimension_count(hidden // 2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * len(specials) + [1] * (len(tokens) - len(specials)))
    writer.add_token_merges(["h e", "Ġ t"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_pad_token_id(2)
    writer.add_unk_token_id(0)

    def random(name: str, rows: int, cols: int) -> None:
        writer.add_tensor(name, (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32))

    random("token_embd.weight", len(tokens), hidden)
    for i in range(layers):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(hidden, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(hidden, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            random(f"blk.{i}.{name}.weight", hidden, hidden)
        random(f"blk.{i}.ffn_gate.weight", hidden * 2, hidden)
        random(f"blk.{i}.ffn_up.weight", hidden * 2, hidden)
        random(f"blk.{i}.ffn_down.weight", hidden, hidden * 2)
    writer.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file
