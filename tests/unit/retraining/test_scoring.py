"""The child's scoring: classes, probabilities and the pooled embedding serving would log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from adaptd.modeling.base import load_classifier, load_tokenizer
from adaptd.monitoring.windows import decode_embedding
from adaptd.retraining.scoring import decode_embedding as from_json
from adaptd.retraining.scoring import score_candidate

LABELS = ("negative", "positive")
TEXTS = ["a good day", "this was really awful and sad today", "ok"]


def test_candidate_scores_match_a_plain_forward_pass(tiny_base: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_base))
    model = load_classifier(str(tiny_base), LABELS, tokenizer=tokenizer)
    predictions, scores = score_candidate(model, tokenizer, {"recent": TEXTS}, max_length=16)
    probs = np.asarray(scores["recent"]["probabilities"])
    assert probs.shape == (3, 2) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert predictions["recent"] == probs.argmax(axis=1).tolist()
    for text, encoded in zip(TEXTS, scores["recent"]["embeddings"], strict=True):
        # one text at a time: no padding, so the mask-mean is the plain mean of the last layer
        enc = tokenizer([text], return_tensors="pt", truncation=True, max_length=16)
        with torch.inference_mode():
            out = model(**enc, output_hidden_states=True)
        expected = out.hidden_states[-1][0].mean(dim=0).numpy()
        got = decode_embedding(from_json(encoded))
        assert got is not None and got.shape == (32,)
        np.testing.assert_allclose(got, expected, atol=2e-3, rtol=1e-2)  # float16 storage
        assert np.allclose(
            torch.softmax(out.logits, dim=-1)[0].numpy(), probs[TEXTS.index(text)], atol=1e-4
        )
