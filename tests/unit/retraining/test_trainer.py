from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adaptd.retraining.scoring import write_eval_file
from adaptd.retraining.spec import Progress, TrainSpec
from adaptd.retraining.trainer import length_batches, lr_factor, train, write_train_file
from tests.unit.retraining.synthetic import keyword_examples

LABELS = ("negative", "positive")


def make_spec(tmp_path: Path, base: Path, **overrides: object) -> TrainSpec:
    train_ex = keyword_examples(400)
    evals = keyword_examples(100, seed=9)
    write_train_file(tmp_path / "train.jsonl", [(e.text, e.label or "", 1.0) for e in train_ex])
    write_eval_file(tmp_path / "eval.jsonl", {"recent": [e.text for e in evals]})
    values: dict[str, object] = {
        "base": str(base),
        "labels": LABELS,
        "train_file": str(tmp_path / "train.jsonl"),
        "out_dir": str(tmp_path / "adapter"),
        "progress_file": str(tmp_path / "progress.jsonl"),
        "eval_file": str(tmp_path / "eval.jsonl"),
        "epochs": 4,
        "learning_rate": 2e-2,
        "max_length": 32,
        "early_stopping_patience": None,
        **overrides,
    }
    return TrainSpec(**values)  # type: ignore[arg-type]


def accuracy(predictions: list[int], seed: int = 9, n: int = 100) -> float:
    y = [LABELS.index(e.label or "") for e in keyword_examples(n, seed=seed)]
    return sum(a == b for a, b in zip(y, predictions, strict=True)) / n


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_lr_schedules() -> None:
    assert lr_factor(0, 100, 10, "linear") == pytest.approx(0.1)
    assert lr_factor(9, 100, 10, "linear") == pytest.approx(1.0)
    assert lr_factor(55, 100, 10, "linear") == pytest.approx(0.5)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(99, 100, 0, "cosine") < 0.001
    assert lr_factor(80, 100, 10, "constant") == 1.0


def test_length_batches_cover_every_index_once_with_little_padding() -> None:
    lengths = [random.Random(i).randrange(5, 60) for i in range(500)]
    batches = length_batches(lengths, 16, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    assert spread / len(batches) < 10


def test_train_learns_saves_peft_layout_and_reports(tmp_path: Path, tiny_base: Path) -> None:
    reports: list[Progress] = []
    result = train(make_spec(tmp_path, tiny_base), reports.append)
    assert accuracy(result.predictions["candidate"]["recent"]) >= 0.8
    names = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "adaptd.json"} <= names
    assert reports and reports[-1].phase == "validate"
    assert reports[-2].step == reports[-2].steps == result.steps
    assert result.samples == 4 * 400  # no dev split without early stopping


def test_seeded_runs_are_identical(tmp_path: Path, tiny_base: Path) -> None:
    a = train(make_spec(tmp_path / "a", tiny_base, epochs=1), lambda p: None)
    b = train(make_spec(tmp_path / "b", tiny_base, epochs=1), lambda p: None)
    wa = load_file(str(tmp_path / "a" / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "adapter" / "adapter_model.safetensors"))
    assert a.predictions == b.predictions
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_head_only_trains_only_the_head(tmp_path: Path, tiny_base: Path) -> None:
    result = train(make_spec(tmp_path, tiny_base, head_only=True, epochs=1), lambda p: None)
    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(float(v.abs().max()) == 0.0 for v in lora_b)  # LoRA B starts at zero
    assert result.trainable_params == 32 * 2 + 2  # the classifier Linear(32, 2)


def test_early_stopping_restores_best_epoch(tmp_path: Path, tiny_base: Path) -> None:
    spec = make_spec(tmp_path, tiny_base, epochs=8, early_stopping_patience=1, learning_rate=0.2)
    result = train(spec, lambda p: None)
    assert result.best_dev_loss is not None
    assert result.stopped_early == (result.epochs_run < 8)


def test_warm_start_continues_from_an_adapter(tmp_path: Path, tiny_base: Path) -> None:
    first = train(make_spec(tmp_path / "a", tiny_base), lambda p: None)
    second = train(
        make_spec(
            tmp_path / "b",
            tiny_base,
            warm_start=first.adapter_dir,
            champion=first.adapter_dir,
            epochs=1,
            learning_rate=1e-3,
        ),
        lambda p: None,
    )
    assert accuracy(second.predictions["candidate"]["recent"]) >= 0.8
    assert second.predictions["champion"]["recent"] == first.predictions["candidate"]["recent"]
