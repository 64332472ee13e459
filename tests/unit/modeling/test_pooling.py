from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adaptd.modeling.base import inspect_base, resolve_base
from adaptd.modeling.pooling import choose_pooling, pool
from adaptd.modeling.tiny import build_tiny_model

LABELS = ("negative", "positive")


@pytest.fixture(scope="module")
def tiny_bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("pooling")
    return {arch: build_tiny_model(root / arch, arch) for arch in ("bert", "gpt2", "llama")}


def test_auto_reads_the_shipped_minilm_sentence_transformers_config() -> None:
    info = inspect_base(resolve_base(None), LABELS)
    assert info.pooling == "mean"
    assert "1_Pooling/config.json" in info.pooling_reason
    assert info.pooling_reason.startswith("auto: sentence-transformers")


def test_auto_mean_pools_encoders_and_reads_the_last_token_of_decoders(
    tiny_bases: dict[str, Path],
) -> None:
    picked = {arch: inspect_base(str(path), LABELS) for arch, path in tiny_bases.items()}
    assert picked["bert"].pooling == "mean" and "without a pooling config" in (
        picked["bert"].pooling_reason
    )
    for arch in ("gpt2", "llama"):
        assert picked[arch].pooling == "last", arch
        assert f"decoder LLM ({arch})" in picked[arch].pooling_reason


def test_an_explicit_setting_wins_and_says_so(tiny_bases: dict[str, Path]) -> None:
    info = inspect_base(str(tiny_bases["gpt2"]), LABELS, pooling="mean")
    assert (info.pooling, info.pooling_reason) == ("mean", "set in model.pooling")


def _st_dir(tmp_path: Path, **modes: bool) -> Path:
    (tmp_path / "1_Pooling").mkdir(parents=True)
    (tmp_path / "modules.json").write_text(
        json.dumps([{"idx": 1, "name": "1", "path": "1_Pooling", "type": "x.models.Pooling"}])
    )
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(modes))
    return tmp_path


def test_a_sentence_transformers_cls_model_gets_cls(tmp_path: Path) -> None:
    model_dir = _st_dir(tmp_path, pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    choice = choose_pooling("auto", model_dir=model_dir, model_type="bert", is_decoder=False)
    assert choice.pooling == "cls"


def test_a_pooling_we_cannot_reproduce_falls_back_and_says_why(tmp_path: Path) -> None:
    model_dir = _st_dir(tmp_path, pooling_mode_max_tokens=True)
    choice = choose_pooling("auto", model_dir=model_dir, model_type="bert", is_decoder=False)
    assert choice.pooling == "mean"
    assert "pooling_mode_max_tokens" in choice.reason and "cannot reproduce" in choice.reason


def test_mean_ignores_padding_and_last_reads_the_last_real_token() -> None:
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)  # values 0..7
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert pool(hidden, mask, "mean").flatten().tolist() == [1.0, 5.5]
    assert pool(hidden, mask, "last").flatten().tolist() == [2.0, 7.0]
    assert pool(hidden, mask, "cls").flatten().tolist() == [0.0, 4.0]
    pooler = torch.tensor([[9.0], [9.0]])
    assert pool(hidden, mask, "cls", pooler) is pooler
