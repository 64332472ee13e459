"""The sequence classifier: the base's bare encoder, a pooling, dropout and a linear head.

Why not ``AutoModelForSequenceClassification``: its head is fixed per architecture (BERT reads
the CLS pooler, which sentence-transformers never trained), and the pooling is the single choice
that decides whether a head on all-MiniLM-L6-v2 starts from 73% or 79% (PERFORMANCE.md 11).

Module names are kept exactly as that class has them: the encoder under the architecture's
``base_model_prefix`` (``bert``, ``transformer``, ``model``) and the head as ``classifier`` on
encoders, ``score`` (no bias) on decoders. So LoRA keys, ``modules_to_save`` and the saved adapter
are the standard PEFT layout any Hugging Face tool reads, and peft's SEQ_CLS task finds the head by
the names it already knows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adaptd.modeling.pooling import Pooling, PoolingChoice, pool


def head_name(is_decoder: bool) -> str:
    return "score" if is_decoder else "classifier"


class PooledClassifier(nn.Module):
    """``model(input_ids=..., attention_mask=..., output_hidden_states=...)`` returns an object
    with ``.logits`` and ``.hidden_states``, like a transformers classifier."""

    def __init__(
        self, encoder: Any, *, num_labels: int, pooling: PoolingChoice, is_decoder: bool
    ) -> None:
        super().__init__()
        config = encoder.config
        #: peft reads the config (model_type picks default LoRA targets) and name_or_path
        self.config = config
        self.name_or_path = str(getattr(encoder, "name_or_path", ""))
        self.encoder_name = str(encoder.base_model_prefix or "encoder")
        self.head_name = head_name(is_decoder)
        self.pooling: Pooling = pooling.pooling
        self.pooling_reason = pooling.reason
        self.is_decoder = is_decoder
        self.add_module(self.encoder_name, encoder)
        p: Any = 0.0
        if not is_decoder:
            # BertForSequenceClassification's choice, so a cls head behaves as it did.
            p = getattr(config, "classifier_dropout", None) or getattr(
                config, "hidden_dropout_prob", 0.1
            )
        self.dropout = nn.Dropout(float(p))
        head = nn.Linear(int(config.hidden_size), num_labels, bias=not is_decoder)
        nn.init.normal_(head.weight, std=float(getattr(config, "initializer_range", 0.02)))
        if head.bias is not None:
            nn.init.zeros_(head.bias)
        self.add_module(self.head_name, head)

    @property
    def encoder(self) -> Any:
        return getattr(self, self.encoder_name)

    @property
    def head(self) -> nn.Linear:
        head: nn.Linear = getattr(self, self.head_name)
        return head

    def features(
        self, input_ids: Any, attention_mask: Any, *, output_hidden_states: bool = False
    ) -> tuple[Any, Any]:
        """The pooled sentence vectors (what the head reads) and, if asked, every layer's states."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra: dict[str, Any] = {"use_cache": False} if self.is_decoder else {}
        out = self.encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **extra,
        )
        pooled = pool(
            out.last_hidden_state,
            attention_mask,
            self.pooling,
            getattr(out, "pooler_output", None),
        )
        return pooled, out.hidden_states if output_hidden_states else None

    def forward(
        self,
        input_ids: Any = None,
        attention_mask: Any = None,
        *,
        output_hidden_states: bool | None = None,
        labels: Any = None,
        **_: Any,  # peft passes return_dict, inputs_embeds, output_attentions: unused here
    ) -> Any:
        from transformers.modeling_outputs import SequenceClassifierOutput

        pooled, hidden_states = self.features(
            input_ids, attention_mask, output_hidden_states=bool(output_hidden_states)
        )
        # The head stays float32 when the encoder runs in a half type: it is tiny, and the
        # logits (probabilities, the loss) are where half precision would show.
        logits = self.head(self.dropout(pooled.to(self.head.weight.dtype)))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=hidden_states)
