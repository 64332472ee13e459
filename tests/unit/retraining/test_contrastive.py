"""The contrastive stage: SetFit's pairs, and the stage inside the trainer on a tiny base."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from adaptd.modeling.base import resolve_base
from adaptd.retraining.contrastive import (
    in_batch_loss,
    mixed_sample,
    pairs,
    row_batches,
    stratified_sample,
)
from adaptd.retraining.settings import RetrainingSettings
from adaptd.retraining.spec import Progress, TrainSpec
from adaptd.retraining.trainer import (
    STAGE_OVERRIDE_P,
    _clearly_beats,
    _Score,
    is_sentence_encoder,
    read_train_file,
    runs_contrastive,
    stage_passes,
    starts_warm,
    train,
    write_train_file,
)
from tests.unit.retraining.test_trainer import make_spec


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_every_row_gets_one_same_and_one_different_partner_per_iteration() -> None:
    labels = [0, 0, 1, 1, 1, 2]
    out = pairs(labels, 3, random.Random(0))
    assert len(out) == 2 * 3 * len(labels)
    assert Counter(i for i, _, _ in out) == dict.fromkeys(range(len(labels)), 6)
    for i, j, target in out:
        assert target == (1.0 if labels[i] == labels[j] else 0.0)
        # a same-label partner is another row when the label has one (row 5 is alone)
        assert target == 0.0 or i != j or i == 5
    assert sum(t for _, _, t in out) == 3 * len(labels)
    assert out == pairs(labels, 3, random.Random(0))  # seeded


def test_a_lone_row_pairs_with_itself_and_one_label_has_no_negatives() -> None:
    assert (0, 0, 1.0) in pairs([0, 1, 1], 1, random.Random(0))
    assert {t for _, _, t in pairs([1, 1, 1], 2, random.Random(0))} == {1.0}


def test_in_batch_loss_is_zero_when_labels_are_the_geometry_and_weights_both_kinds() -> None:
    y = torch.tensor([0, 0, 1, 1, 1])
    perfect = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 0.5]])
    loss, counted = in_batch_loss(perfect, y)
    assert counted == 10 and float(loss) == pytest.approx(0.0, abs=1e-6)
    # every vector alike: the 4 same-label pairs are right, the 6 different ones off by 1; the
    # two kinds weigh half each, not 6/10
    alike = torch.ones((5, 2))
    assert float(in_batch_loss(alike, y)[0]) == pytest.approx(0.5)
    assert float(in_batch_loss(alike, torch.zeros(5, dtype=torch.long))[0]) == pytest.approx(0.0)


def test_row_batches_cover_every_row_once_per_pass_with_no_lone_row() -> None:
    out = row_batches(33, 16, 3, random.Random(0))
    assert [len(b) for b in out] == [16, 17] * 3
    for k in range(3):
        assert sorted(out[2 * k] + out[2 * k + 1]) == list(range(33))


def test_stratified_sample_keeps_each_labels_share_and_takes_all_when_small() -> None:
    labels = [0] * 70 + [1] * 20 + [2] * 10
    out = stratified_sample(labels, 25, random.Random(0))
    assert len(out) == 25 and out == sorted(set(out))
    counts = [sum(labels[i] == y for i in out) for y in range(3)]
    assert counts[0] in {17, 18} and counts[1] == 5 and counts[2] in {2, 3}
    assert stratified_sample(labels, 100, random.Random(0)) == list(range(100))
    assert stratified_sample(labels, 25, random.Random(0)) == out  # seeded
    assert stratified_sample(labels, 25, random.Random(1)) != out


def test_mixed_sample_gives_the_replayed_rows_their_share_and_each_part_its_labels() -> None:
    # a refinement's rows: 1,500 new labels and the 234 its first adapter learnt from
    labels = [0, 1, 1] * 500 + [0, 1] * 117
    replayed = [False] * 1500 + [True] * 234
    out = mixed_sample(labels, replayed, 500, 0.5, random.Random(0))
    assert len(out) == 500 and out == sorted(set(out))
    old = [i for i in out if replayed[i]]
    assert len(old) == 234  # all of them: fewer than half of 500
    assert sum(labels[i] for i in old) == 117
    new = [i for i in out if not replayed[i]]
    assert sum(labels[i] == 0 for i in new) in {88, 89}  # a third of 266
    # as one sample the replayed rows would keep their share: about 67
    alone = stratified_sample(labels, 500, random.Random(0))
    assert sum(replayed[i] for i in alone) < 100
    # more replayed rows than the share asks for: the share, the rest new
    many = mixed_sample(
        labels, [i % 2 == 0 for i in range(len(labels))], 100, 0.3, random.Random(0)
    )
    assert len(many) == 100 and sum(i % 2 == 0 for i in many) == 30
    assert mixed_sample(labels[:50], replayed[:50], 500, 0.5, random.Random(0)) == list(range(50))
    # a first adapter replays nothing: the sample is the one the stage always drew
    first = mixed_sample(labels, [False] * len(labels), 500, 0.5, random.Random(0))
    assert first == stratified_sample(labels, 500, random.Random(0))


def test_the_stage_runs_on_a_sample_of_a_larger_training_set(
    tmp_path: Path, tiny_base: Path
) -> None:
    spec = make_spec(
        tmp_path, tiny_base, contrastive="on", contrastive_pairing="setfit",
        contrastive_iterations=1, contrastive_max_rows=100, epochs=1,
    )  # fmt: skip
    stage = train(spec, lambda p: None).contrastive
    assert stage is not None and stage["rows"] == 100 and stage["pairs"] == 2 * 100


def test_the_stages_sample_gives_replayed_rows_their_share(tmp_path: Path, tiny_base: Path) -> None:
    spec = make_spec(
        tmp_path, tiny_base, contrastive="on", contrastive_iterations=1,
        contrastive_max_rows=100, epochs=1,
    )  # fmt: skip
    # a refinement's rows: 360 new labels and 40 replayed ones (a tenth)
    rows = read_train_file(Path(spec.train_file))
    flags = [i >= 360 for i in range(len(rows))]
    write_train_file(
        Path(spec.train_file), [(r.text, r.label, r.weight) for r in rows], replayed=flags
    )
    mixed = train(replace(spec, contrastive_replay_share=0.5), lambda p: None).contrastive
    assert mixed is not None and (mixed["rows"], mixed["replayed"]) == (100, 40)
    one = train(replace(spec, out_dir=str(tmp_path / "one")), lambda p: None).contrastive
    assert one is not None and one["rows"] == 100 and one["replayed"] < 20


def test_setfit_pairing_encodes_two_texts_per_pair(tmp_path: Path, tiny_base: Path) -> None:
    spec = make_spec(
        tmp_path, tiny_base, contrastive="on", contrastive_pairing="setfit",
        contrastive_iterations=1, epochs=1,
    )  # fmt: skip
    stage = train(spec, lambda p: None).contrastive
    assert stage is not None and stage["pairs"] == 2 * 360 and stage["steps"] == 45


def test_auto_runs_on_a_fresh_sentence_encoder_adapter_only(tmp_path: Path) -> None:
    def runs(spec: TrainSpec, *, decoder: bool = False, st: bool = True) -> bool:
        return runs_contrastive(spec, is_decoder=decoder, sentence_encoder=st)

    spec = make_spec(tmp_path, tmp_path, contrastive="auto")
    assert runs(spec)
    assert not runs(spec, decoder=True)
    # a body not trained for sentence embeddings (the tests' tiny random BERT, a plain BERT)
    assert not runs(spec, st=False)
    warm = make_spec(tmp_path, tmp_path, contrastive="auto", warm_start=str(tmp_path))
    assert not runs(warm)
    on = make_spec(tmp_path, tmp_path, contrastive="on")
    assert runs(on, decoder=True, st=False)
    features = make_spec(tmp_path, tmp_path, contrastive="on", mode="features")
    assert not runs(features)
    assert not runs(make_spec(tmp_path, tmp_path, contrastive="off"))
    assert make_spec(tmp_path, tmp_path).contrastive == "auto"  # as the setting's default


def test_auto_warm_start_goes_fresh_where_the_stage_shapes_a_fresh_lora() -> None:
    def warm(setting: bool | str = "auto", *, st: bool = True, **kw: str) -> bool:
        given = {"contrastive": "auto", "mode": "auto", **kw}
        return starts_warm(setting, sentence_encoder=st, **given)  # type: ignore[arg-type]

    assert not warm()  # the shipped MiniLM: a fresh LoRA and the stage
    assert warm(st=False)  # the tests' tiny BERT, a decoder LLM: as measured, warm
    assert warm(contrastive="off")  # no stage to pay for a fresh start
    assert warm(mode="features")  # a probe on the champion's features
    assert warm(True) and not warm(False, st=False)  # explicit settings win
    assert RetrainingSettings().warm_start == "auto"


def test_auto_stage_passes_halve_for_a_retrain_that_replaces_a_serving_adapter() -> None:
    assert RetrainingSettings().contrastive_iterations == "auto"
    assert stage_passes("auto", replaces_champion=False) == 10  # a first adapter, as measured
    assert stage_passes("auto", replaces_champion=True) == 5  # on the clock after a shift
    assert stage_passes(7, replaces_champion=True) == 7  # an explicit number wins
    assert stage_passes(7, replaces_champion=False) == 7
    with pytest.raises(ValidationError, match="contrastive_iterations"):
        RetrainingSettings(contrastive_iterations=0)


def test_a_sentence_encoder_is_a_directory_with_a_pooling_module(
    tmp_path: Path, tiny_base: Path
) -> None:
    assert is_sentence_encoder(resolve_base(None))  # the shipped all-MiniLM-L6-v2
    assert not is_sentence_encoder(str(tiny_base))
    assert not is_sentence_encoder(str(tmp_path / "model.gguf"))


def test_the_stage_learns_its_pairs_then_the_probe_is_refitted(
    tmp_path: Path, tiny_base: Path
) -> None:
    # Whether the stage lifts held-out accuracy is bench/adaptation/contrastive.py's question on
    # the real model; the tiny random BERT only shows the mechanics.
    reports: list[Progress] = []
    spec = make_spec(
        tmp_path,
        tiny_base,
        contrastive="on",
        contrastive_pairing="in-batch",
        contrastive_iterations=5,
        contrastive_learning_rate=3e-3,
        epochs=1,
    )
    result = train(spec, reports.append)
    stage = result.contrastive
    assert stage is not None
    # 360 training rows (10 % of 400 are dev) in batches of 16: 22 of 16 and one of 8 per pass
    assert stage["steps"] == 5 * 23 and stage["pairs"] == 5 * (22 * 120 + 28)
    assert stage["loss_last"] < 0.8 * stage["loss_first"]
    dev = {c["checkpoint"]: c["dev_accuracy"] for c in result.checkpoints}
    assert list(dev) == ["probe", "contrastive", "epoch 1"]
    assert stage["dev_accuracy"] == dev["contrastive"] >= dev["probe"]
    assert result.kept != "probe"
    phases = [p.phase for p in reports]
    assert phases.index("probe") < phases.index("contrastive") < phases.index("train")
    last = [p for p in reports if p.phase == "contrastive"][-1]
    assert last.step == last.steps == 5 * 23
    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert any(float(v.abs().max()) > 0 for k, v in weights.items() if "lora_B" in k)


#: the stage's learning rates tried: which of them wrecks the tiny model's features, and by how
#: much, depends on the CPU's float kernels (lr 1.0 left 21 of 40 dev rows right on one machine,
#: 23 on another), so the test looks for one far behind the probe and one close to it. The close
#: ones sit in a narrow band: on one CPU 0.1 was the only rate 1-4 rows behind, on another it was
#: 5 behind and 0.06-0.09 were the close ones, hence the dense grid there.
STAGE_LRS = (0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.3, 0.5, 1.0, 2.0, 3.0)


def test_the_probe_replaces_the_stage_only_when_significantly_better_on_dev(
    tmp_path: Path, tiny_base: Path
) -> None:
    far, near = [], []
    for lr in STAGE_LRS:
        spec = make_spec(
            tmp_path / str(lr),
            tiny_base,
            contrastive="on",
            contrastive_pairing="in-batch",
            contrastive_iterations=5,
            contrastive_learning_rate=lr,
            epochs=1,
            learning_rate=1e-9,
            head_learning_rate=1e-9,
        )
        result = train(spec, lambda p: None)
        dev = {c["checkpoint"]: c["dev_accuracy"] for c in result.checkpoints}
        behind = round((dev["probe"] - dev["contrastive"]) * 40)  # dev rows, of 40
        if behind >= 12:
            # wrecked features: 12 rows net of at most 40 discordant ones is one-sided exact
            # McNemar p <= 0.04, so the probe is significantly better, the fine-tune starts
            # again from it, and its epoch (at a rate that moves nothing) scores what it scored
            far.append(lr)
            assert result.kept in {"probe", "epoch 1"}, (lr, dev)
            assert dev["epoch 1"] == pytest.approx(dev["probe"], abs=0.03)
        elif 0 < behind <= 4:
            # a few rows behind (p >= 0.0625 even when all discordant rows go one way): noise
            # on 40 rows, the stage stays (on movie snippets the probe 2.5 points ahead on dev
            # was 5.6 behind on held-out rows)
            near.append(lr)
            assert result.kept == "contrastive", (lr, dev)
            assert dev["epoch 1"] == pytest.approx(dev["contrastive"], abs=0.03)
    assert far and near, f"no stage learning rate far behind ({far}) and near ({near}) the probe"


STAGE = np.array([False] * 10 + [True] * 30)  # the stage: 30 of 40 dev rows right


def _epoch(fixed: int, broken: int = 0) -> _Score:
    """An epoch that gets ``fixed`` of the stage's wrong rows right and ``broken`` right ones
    wrong."""
    correct = STAGE.copy()
    correct[:fixed] = True
    correct[len(STAGE) - broken :] = False
    return _Score(accuracy=float(correct.mean()), loss=0.5, correct=correct)


def test_a_kept_stage_gives_way_only_to_an_epoch_significantly_better_on_dev() -> None:
    stage = _Score(accuracy=0.75, loss=0.5, correct=STAGE)
    # 4 more dev rows right (10 points on 40 rows) is p = 1/16: noise on a set this small, the
    # case where the stage was 8 points better on 1,000 held-out movie snippets
    assert not _clearly_beats(_epoch(4), stage)
    assert not _clearly_beats(_epoch(8, broken=3), stage)  # 5 more, p = 0.11
    # 9 more, none lost: p = 1/512, the fine-tune learnt what the stage could not
    assert _clearly_beats(_epoch(9), stage)
    # no stage kept: the ordinary selection decides alone
    assert _clearly_beats(_epoch(4), None)
    assert STAGE_OVERRIDE_P == 0.05
