"""The champion/candidate mixture is the interpolated model, in memory and as peft reads it."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from adaptd.modeling.base import load_classifier
from adaptd.modeling.interpolation import compress, interpolate, interpolate_adapters
from adaptd.modeling.lora import PlainLora, load_adapter, read_adapter_config
from tests.unit.adapters.builders import LABELS, build_base
from tests.unit.modeling.test_sharing import trained_adapter


def _lora(
    seed: int, rank: int, *, labels: int = 2, names: tuple[str, ...] = ("q", "v")
) -> PlainLora:
    g = torch.Generator().manual_seed(seed)
    layers = {
        n: (torch.randn(rank, 6, generator=g), torch.randn(5, rank, generator=g)) for n in names
    }
    head = {"weight": torch.randn(labels, 5, generator=g), "bias": torch.randn(labels, generator=g)}
    return PlainLora(layers=layers, head=head)


def _delta(lora: PlainLora, name: str) -> torch.Tensor:
    a, b = lora.layers[name]
    return b @ a


def test_the_mixture_is_the_interpolated_delta_and_head_at_the_two_ranks_stacked() -> None:
    before, after = _lora(0, 2), _lora(1, 3, names=("q", "v", "o"))
    mixed = interpolate(before, after, 0.3, max_rank=8)
    assert mixed is not None
    for name in ("q", "v"):
        assert mixed.layers[name][0].shape == (5, 6)
        want = 0.7 * _delta(before, name) + 0.3 * _delta(after, name)
        torch.testing.assert_close(_delta(mixed, name), want)
    # a layer only the candidate adapts gets its share of the candidate's delta
    torch.testing.assert_close(_delta(mixed, "o"), 0.3 * _delta(after, "o"))
    for key in ("weight", "bias"):
        torch.testing.assert_close(mixed.head[key], 0.7 * before.head[key] + 0.3 * after.head[key])


def test_above_max_rank_the_delta_keeps_its_best_low_rank_approximation() -> None:
    before, after = _lora(2, 3), _lora(3, 3)
    mixed = interpolate(before, after, 0.5, max_rank=2)
    assert mixed is not None
    full = 0.5 * _delta(before, "q") + 0.5 * _delta(after, "q")
    s = torch.linalg.svdvals(full)
    a, b = mixed.layers["q"]
    assert a.shape == (2, 6) and b.shape == (5, 2)
    # Eckart-Young: the error of the best rank-2 approximation is the dropped singular values
    error = torch.linalg.matrix_norm(full - b @ a)
    torch.testing.assert_close(error, s[2:].square().sum().sqrt(), rtol=1e-4, atol=1e-5)
    # and the two factors carry one scale, as a later fine-tune starting from them wants
    torch.testing.assert_close(torch.linalg.matrix_norm(a), torch.linalg.matrix_norm(b))


def test_compressing_a_delta_of_lower_rank_than_asked_loses_nothing() -> None:
    g = torch.Generator().manual_seed(4)
    a = torch.randn(2, 6, generator=g)
    a = torch.cat([a, 2 * a])  # rank 2 written as 4 directions
    b = torch.randn(5, 4, generator=g)
    new_a, new_b = compress(a, b, 2)
    torch.testing.assert_close(new_b @ new_a, b @ a, rtol=1e-5, atol=1e-5)


def test_adapters_for_other_labels_are_not_mixed() -> None:
    assert interpolate(_lora(0, 2), _lora(1, 2, labels=3), 0.5, max_rank=8) is None


def test_an_interpolated_adapter_on_disk_is_the_interpolated_model_as_peft_loads_it(
    tmp_path: Path,
) -> None:
    """Merged into the base, every tensor of the mixture is the mixture of the two merged
    models' tensors (the base's are the same in both)."""
    base = build_base(tmp_path / "bert", arch="bert")
    champion = trained_adapter(base, tmp_path / "champion", seed=1, targets=("all-linear",))
    candidate = trained_adapter(base, tmp_path / "candidate", seed=2, targets=("all-linear",))
    merged = {
        name: load_adapter(load_classifier(str(base), LABELS), path).merge_and_unload().state_dict()
        for name, path in (("champion", champion), ("candidate", candidate))
    }

    assert interpolate_adapters(champion, candidate, 0.25, max_rank=8) == 8

    config = read_adapter_config(candidate)
    # rank 4 + 4, at the recipe's scaling (alpha / r = 16 / 4) that a warm start trains with
    assert (config["r"], config["lora_alpha"]) == (8, 32)
    meta = json.loads((candidate / "adaptd.json").read_text())
    assert meta["interpolation"] == {"share": 0.25, "with": str(champion), "rank": 8}
    mixed = load_adapter(load_classifier(str(base), LABELS), candidate).merge_and_unload()
    for name, got in mixed.state_dict().items():
        want = 0.75 * merged["champion"][name] + 0.25 * merged["candidate"][name]
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=name)


def test_a_mixture_above_max_rank_is_written_at_max_rank_and_loads(tmp_path: Path) -> None:
    base = build_base(tmp_path / "bert", arch="bert")
    champion = trained_adapter(base, tmp_path / "champion", seed=1, targets=("all-linear",))
    candidate = trained_adapter(base, tmp_path / "candidate", seed=2, targets=("all-linear",))

    assert interpolate_adapters(champion, candidate, 0.5, max_rank=6) == 6

    assert read_adapter_config(candidate)["r"] == 6
    model = load_adapter(load_classifier(str(base), LABELS), candidate, trainable=True)
    ranks = {p.shape[0] for n, p in model.named_parameters() if "lora_A" in n}
    assert ranks == {6}
