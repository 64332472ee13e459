from __future__ import annotations

from pathlib import Path

import pytest
import torch

from adaptd.modeling.base import base_module_shapes, load_classifier, load_tokenizer
from adaptd.modeling.lora import LoraSpec, new_adapter
from adaptd.modeling.tiny import build_tiny_model

LABELS = ("negative", "positive")
TEXTS = ["a short one", "a somewhat longer sentence to pad against"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return build_tiny_model(tmp_path_factory.mktemp("classifier") / "bert")


def test_cls_pooling_is_exactly_the_auto_model_for_sequence_classification_head(
    bert: Path,
) -> None:
    """Adapters saved before the pooling was recorded keep serving unchanged under cls."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(str(bert))
    ours = load_classifier(str(bert), LABELS, tokenizer=tokenizer, pooling="cls")
    theirs = AutoModelForSequenceClassification.from_pretrained(str(bert), num_labels=2).eval()
    ours_keys = {k for k in ours.state_dict() if not k.startswith("bert.pooler")}
    assert ours_keys == {k for k in theirs.state_dict() if not k.startswith("bert.pooler")}
    ours.load_state_dict(theirs.state_dict())
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(ours(**batch).logits, theirs(**batch).logits, atol=1e-6)


def test_mean_head_keeps_hugging_face_module_names_and_the_forward_interface(bert: Path) -> None:
    tokenizer = load_tokenizer(str(bert))
    model = load_classifier(str(bert), LABELS, tokenizer=tokenizer)
    assert model.pooling == "mean" and model.head_name == "classifier"
    peft_model = new_adapter(model, LoraSpec(rank=4))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any(".bert.encoder.layer.0.attention.self.query.lora_A" in n for n in trainable)
    assert any("classifier.modules_to_save" in n for n in trainable)
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    out = peft_model(**batch, output_hidden_states=True)
    assert out.logits.shape == (2, 2)
    assert len(out.hidden_states) == 3  # embeddings + 2 layers
    # padding does not change a text's mean-pooled logits
    alone = peft_model.eval()(**tokenizer(TEXTS[:1], return_tensors="pt")).logits
    assert torch.allclose(alone, peft_model(**batch).logits[:1], atol=1e-5)
    shapes = base_module_shapes(str(bert), LABELS)
    assert shapes["classifier"] == (32, 2)
    assert "bert.encoder.layer.0.attention.self.query" in shapes


def test_all_linear_adapts_every_encoder_linear_layer_but_not_the_head(bert: Path) -> None:
    model = new_adapter(
        load_classifier(str(bert), LABELS), LoraSpec(target_modules=("all-linear",))
    )
    adapted = {
        n.split(".lora_A")[0].rsplit(".", 1)[-1]
        for n, _ in model.named_parameters()
        if ".lora_A" in n
    }
    assert adapted == {"query", "key", "value", "dense"}
    assert not any("classifier" in n and "lora" in n for n, _ in model.named_parameters())
