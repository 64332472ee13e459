from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adaptd.retraining import trainer
from adaptd.retraining.scoring import write_eval_file
from adaptd.retraining.spec import Progress, TrainSpec
from adaptd.retraining.trainer import (
    TrainRow,
    length_batches,
    lr_factor,
    read_train_file,
    split_dev,
    train,
    write_train_file,
)
from tests.unit.retraining.synthetic import keyword_examples, sentence_encoder_copy

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
        # mean pooling dilutes the one keyword over the filler: the tiny random BERT needs ~10
        # passes where its CLS pooler needed 4
        "epochs": 10,
        "min_steps": 0,
        "learning_rate": 2e-2,
        "head_learning_rate": 2e-2,
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
    assert reports and reports[0].phase == "probe" and reports[-1].phase == "validate"
    assert reports[-2].step == reports[-2].steps == result.steps
    assert result.samples == result.epochs_run * 360  # 10 % of the rows are the dev split
    meta = json.loads((tmp_path / "adapter" / "adaptd.json").read_text())
    assert meta["pooling"] == "mean" and meta["head"] == "classifier"
    assert meta["base_model_type"] == "bert" and meta["kept"] == result.kept


def test_seeded_runs_are_identical(tmp_path: Path, tiny_base: Path) -> None:
    a = train(make_spec(tmp_path / "a", tiny_base, epochs=1), lambda p: None)
    b = train(make_spec(tmp_path / "b", tiny_base, epochs=1), lambda p: None)
    wa = load_file(str(tmp_path / "a" / "adapter" / "adapter_model.safetensors"))
    wb = load_file(str(tmp_path / "b" / "adapter" / "adapter_model.safetensors"))
    assert a.predictions == b.predictions
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_features_mode_fits_only_the_head_by_the_probe(tmp_path: Path, tiny_base: Path) -> None:
    result = train(make_spec(tmp_path, tiny_base, mode="features"), lambda p: None)
    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    assert lora_b and all(float(v.abs().max()) == 0.0 for v in lora_b)  # LoRA B starts at zero
    assert result.trainable_params == 32 * 2 + 2  # the classifier Linear(32, 2)
    assert result.steps == 0 and result.kept == "probe"
    assert result.best_dev_accuracy == result.probe_dev_accuracy


def test_min_steps_gives_small_datasets_more_epochs(tmp_path: Path, tiny_base: Path) -> None:
    # 360 training rows / 16 = 23 steps per epoch: 100 steps need 5 epochs, not the 1 asked for.
    spec = make_spec(tmp_path, tiny_base, epochs=1, min_steps=100, mode="finetune")
    result = train(spec, lambda p: None)
    assert result.epochs_run == 5 and result.steps == 5 * 23


def test_auto_falls_back_to_the_probe_when_fine_tuning_does_not_help(
    tmp_path: Path, tiny_base: Path
) -> None:
    # A learning rate this large wrecks the encoder: every fine-tuned epoch is worse on dev than
    # the probe, so auto keeps the probe's head and leaves the LoRA weights untouched.
    spec = make_spec(tmp_path, tiny_base, epochs=2, learning_rate=5.0, head_learning_rate=5.0)
    result = train(spec, lambda p: None)
    assert result.kept == "probe"
    assert result.best_dev_accuracy == result.probe_dev_accuracy
    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert all(float(v.abs().max()) == 0.0 for k, v in weights.items() if "lora_B" in k)
    wrecked = train(
        make_spec(
            tmp_path / "ft",
            tiny_base,
            epochs=2,
            learning_rate=5.0,
            head_learning_rate=5.0,
            mode="finetune",
        ),
        lambda p: None,
    )
    assert wrecked.kept.startswith("epoch")
    assert accuracy(result.predictions["candidate"]["recent"]) > accuracy(
        wrecked.predictions["candidate"]["recent"]
    )


def test_linear_probe_matches_scikit_learn_logistic_regression() -> None:
    from sklearn.linear_model import LogisticRegression

    from adaptd.modeling.probe import fit_linear_probe

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 8, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * torch.randn(300, generator=gen) > 0).long()
    weight, bias = fit_linear_probe(x, y, torch.ones(300), num_labels=2, c=1.0)
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(x.numpy(), y.numpy())
    ours = (x @ weight.T + bias).argmax(dim=1).numpy()
    assert (ours == ref.predict(x.numpy())).mean() >= 0.98
    # the same direction as sklearn's binary weights (the difference of our two class rows)
    cosine = torch.nn.functional.cosine_similarity(
        weight[1] - weight[0], torch.tensor(ref.coef_[0]).float(), dim=0
    )
    assert float(cosine) > 0.99


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


def test_a_retrain_is_saved_and_scored_as_its_interpolation_with_the_champion(
    tmp_path: Path, tiny_base: Path
) -> None:
    from adaptd.modeling.lora import read_adapter_config
    from adaptd.retraining.scoring import read_eval_file, score_champion

    first = train(make_spec(tmp_path / "a", tiny_base), lambda p: None)
    as_trained = train(
        make_spec(tmp_path / "b", tiny_base, champion=first.adapter_dir, epochs=2),
        lambda p: None,
    )
    mixed = train(
        make_spec(
            tmp_path / "c", tiny_base, champion=first.adapter_dir, epochs=2, interpolation=0.5
        ),
        lambda p: None,
    )

    assert as_trained.interpolated_rank is None
    assert read_adapter_config(Path(as_trained.adapter_dir))["r"] == 8
    assert mixed.interpolated_rank == 16  # a fresh rank 8 beside the champion's 8
    assert read_adapter_config(Path(mixed.adapter_dir))["r"] == 16
    assert mixed.kept == as_trained.kept  # the same training: only what is saved differs
    got = mixed.scores["recent"]["probabilities"]
    assert got != as_trained.scores["recent"]["probabilities"]
    # what the gates judge is what would be served: the files, read back
    slices = read_eval_file(tmp_path / "c" / "eval.jsonl")
    served = score_champion(str(tiny_base), LABELS, Path(mixed.adapter_dir), slices, max_length=32)
    assert mixed.predictions["candidate"] == served


def test_a_warm_start_keeps_its_probe_unless_an_epoch_is_significantly_better(
    tmp_path: Path, tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The guard holds on a sentence-transformers base (the shipped MiniLM's layout): the tiny
    # random BERT with a mean Pooling module declared.
    st_base = sentence_encoder_copy(tiny_base, tmp_path / "st-base")
    # The champion is a probe on the tiny random BERT's features (LoRA untouched): weak on the
    # keyword task, which only fine-tuning learns. At C=1: cross-validated, the probe reaches
    # 77% on dev and leaves the fine-tune less to show.
    champion = train(
        make_spec(tmp_path / "champion", st_base, mode="features", probe_c=1.0), lambda p: None
    )
    retrain = train(
        make_spec(tmp_path / "warm", st_base, warm_start=champion.adapter_dir, probe_c=1.0),
        lambda p: None,
    )
    # learning what the probe cannot is significant on 40 dev rows: the epoch is kept
    assert retrain.kept.startswith("epoch")
    assert retrain.best_dev_accuracy is not None and retrain.probe_dev_accuracy is not None
    assert retrain.best_dev_accuracy >= retrain.probe_dev_accuracy + 0.15

    # No dev difference counts as significant: a warm start keeps the probe, whatever its
    # epochs score; a fresh LoRA (nothing guarded) keeps the best epoch as before.
    monkeypatch.setattr(trainer, "STAGE_OVERRIDE_P", 0.0)
    guarded = train(
        make_spec(tmp_path / "guarded", st_base, warm_start=champion.adapter_dir, probe_c=1.0),
        lambda p: None,
    )
    assert guarded.kept == "probe"
    assert guarded.best_dev_accuracy == guarded.probe_dev_accuracy
    dev = [c["dev_accuracy"] for c in guarded.checkpoints]
    assert max(dev[1:]) > dev[0]  # the epochs were ahead on dev, and not kept
    fresh = train(
        make_spec(tmp_path / "fresh", st_base, contrastive="off", probe_c=1.0), lambda p: None
    )
    assert fresh.kept.startswith("epoch")
    # and not on a base that is no sentence encoder: its epochs are kept as before
    plain = train(
        make_spec(tmp_path / "plain", tiny_base, warm_start=champion.adapter_dir, probe_c=1.0),
        lambda p: None,
    )
    assert plain.kept.startswith("epoch")


def test_dev_rows_come_from_the_new_labels_when_replay_is_mixed_in(tmp_path: Path) -> None:
    rows = [(f"new {i}", "positive", 1.0) for i in range(40)]
    rows += [(f"old {i}", "negative", 0.5) for i in range(60)]
    write_train_file(tmp_path / "t.jsonl", rows, replayed=[False] * 40 + [True] * 60)
    read = read_train_file(tmp_path / "t.jsonl")
    assert read[0] == TrainRow("new 0", "positive", 1.0, False)
    assert read[-1] == TrainRow("old 59", "negative", 0.5, True)
    assert '"replayed"' not in (tmp_path / "t.jsonl").read_text().splitlines()[0]
    random.Random(0).shuffle(read)  # the trainer shuffles before splitting
    dev, train_rows = split_dev(read, 0.1, "new")
    assert len(dev) == 4 and all(not r.replayed for r in dev)  # 10 % of the 40 new rows
    assert len(train_rows) == 96 and not {r.text for r in dev} & {r.text for r in train_rows}
    dev_all, _ = split_dev(read, 0.1, "all")
    assert len(dev_all) == 10 and any(r.replayed for r in dev_all)
    # without replayed rows both draw the same split
    fresh = [r for r in read if not r.replayed]
    assert split_dev(fresh, 0.1, "new") == split_dev(fresh, 0.1, "all")
    # too small to split: everything trains
    assert split_dev(read[:3], 0.1, "new") == ([], read[:3])


def test_every_checkpoint_is_recorded_and_offered_to_the_caller(
    tmp_path: Path, tiny_base: Path
) -> None:
    seen: list[str] = []
    spec = make_spec(tmp_path, tiny_base, epochs=2, select_by="loss")
    result = train(spec, lambda p: None, on_checkpoint=lambda name, model: seen.append(name))
    assert seen == ["probe", "epoch 1", "epoch 2"]
    assert [c["checkpoint"] for c in result.checkpoints] == seen
    assert result.dev_rows == 40
    # select_by loss keeps the checkpoint of the lowest dev loss
    best = min(result.checkpoints, key=lambda c: c["dev_loss"])
    assert result.kept == best["checkpoint"]
    assert result.best_dev_loss == pytest.approx(best["dev_loss"])


def test_cross_validation_regularizes_noise_hard_and_clean_signal_lightly() -> None:
    from adaptd.modeling.probe import C_GRID, best_c, cross_validate_c

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(300, 64, generator=gen)
    noise = torch.randint(0, 2, (300,), generator=gen)
    clean = (x[:, 0] > 0).long()
    ones = torch.ones(300)
    # Labels unrelated to the features: any weight overfits, so the loss wants the prior.
    assert best_c(cross_validate_c(x, noise, ones, num_labels=2), by="loss") == min(C_GRID)
    # One clean direction among 8: the more freedom the better.
    scores = cross_validate_c(x[:, :8], clean, ones, num_labels=2)
    few = best_c(scores, by="loss")
    assert few >= 1.0
    # held-out accuracy, every row held out once
    assert scores[best_c(scores, by="accuracy")][0] > 0.9
    # The same direction among 64, 63 of them noise to overfit: somewhere in between.
    assert min(C_GRID) < best_c(cross_validate_c(x, clean, ones, num_labels=2), by="loss") < few
    # The scale of the features moves the C it wants (a decoder's few very large dimensions):
    # the same rows scaled up 30 times want a C at least ten times smaller.
    scaled = best_c(cross_validate_c(30 * x[:, :8], clean, ones, num_labels=2), by="loss")
    assert scaled * 10 <= few


def test_auto_probe_strength_on_too_few_rows_to_fold_is_the_default_c() -> None:
    x, y, w = torch.randn(6, 4), torch.tensor([0, 1, 0, 1, 0, 1]), torch.ones(6)
    assert trainer.probe_strength("auto", x, y, w, num_labels=2) == 1.0
    assert trainer.probe_strength(0.2, x, y, w, num_labels=2) == 0.2


def test_auto_probe_strength_is_cross_validated_and_reaches_the_fit(
    tmp_path: Path, tiny_base: Path
) -> None:
    from adaptd.modeling.probe import C_GRID
    from adaptd.retraining.settings import RetrainingSettings

    assert RetrainingSettings().probe_c == "auto"
    heads: dict[str, float] = {}
    chosen: dict[str, float | None] = {}
    for c in ("auto", "picked"):
        run_dir = tmp_path / c
        run_dir.mkdir()

        def on_checkpoint(name: str, model: object, c: str = c) -> None:
            if name == "probe":
                heads[c] = float(trainer.trainable_head(model).weight.detach().norm())

        probe_c = "auto" if c == "auto" else chosen["auto"]
        result = train(
            make_spec(run_dir, tiny_base, mode="features", probe_c=probe_c),
            lambda p: None,
            on_checkpoint=on_checkpoint,
        )
        chosen[c] = result.probe_c
    assert chosen["auto"] in C_GRID  # resolved, and reported with the result
    assert chosen["picked"] == chosen["auto"]  # an explicit C wins
    # the same rows at the C that auto resolved to: the same head
    assert heads["auto"] == pytest.approx(heads["picked"], rel=1e-4)


def test_epochs_over_probe_keeps_an_epoch_unless_the_probe_is_significantly_better(
    tmp_path: Path, tiny_base: Path
) -> None:
    # A fine-tune that learns nothing (both learning rates 0) leaves every epoch the probe's
    # equal on dev: by default the probe, checkpoint 0, is kept (an epoch must beat it); with
    # the option the epochs compete first, and an equal probe does not come back.
    frozen = {"contrastive": "off", "epochs": 2, "learning_rate": 0.0, "head_learning_rate": 0.0}
    default = train(make_spec(tmp_path / "default", tiny_base, **frozen), lambda p: None)
    assert default.kept == "probe"
    option = train(
        make_spec(tmp_path / "option", tiny_base, epochs_over_probe=True, **frozen),
        lambda p: None,
    )
    assert option.kept == "epoch 1"
    assert option.best_dev_accuracy == option.probe_dev_accuracy
    # A fine-tune that wrecks the features (the step 50 times too large) loses to the probe by
    # far more than noise on 40 dev rows: the probe comes back.
    wrecked = {"contrastive": "off", "epochs": 2, "learning_rate": 1.0, "head_learning_rate": 1.0}
    back = train(
        make_spec(tmp_path / "back", tiny_base, epochs_over_probe=True, **wrecked),
        lambda p: None,
    )
    dev = [c["dev_accuracy"] for c in back.checkpoints]
    assert max(dev[1:]) < dev[0]
    assert back.kept == "probe"
