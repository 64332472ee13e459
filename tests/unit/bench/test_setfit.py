"""bench.adaptation.setfit's peer: SetFit with the whole encoder trained, not LoRA weights."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.adaptation import setfit

from adaptd.modeling.tiny import build_tiny_model
from tests.unit.retraining.synthetic import keyword_examples


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "bert", hidden=32, layers=2)


def test_full_body_setfit_learns_the_pairs_and_predicts_every_row(
    tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the library's 20 iterations at 2e-5 are for a pretrained encoder; the random tiny one
    # needs larger steps to learn its pairs in a few seconds
    monkeypatch.setattr(setfit, "ITERATIONS", 4)
    monkeypatch.setattr(setfit, "LEARNING_RATE", 1e-3)
    rows, test = keyword_examples(60), keyword_examples(20, seed=9)
    out = setfit.setfit_full_body(str(tiny_base), rows, test, max_length=32, seed=0)
    assert len(out["predictions"]) == len(test)
    assert set(out["predictions"]) <= {0, 1}
    assert out["pairs"] == 2 * 4 * len(rows)
    assert out["steps"] == -(-out["pairs"] // setfit.BATCH_SIZE)
    first, last = out["loss"]
    assert last < first
