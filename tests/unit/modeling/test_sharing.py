"""Versions that share the base model's weights: same logits as peft (merged or not), no base
tensor copied, the base left untouched, and a version's own memory is its adapter's size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from adaptd.modeling.base import load_classifier, load_tokenizer
from adaptd.modeling.lora import LoraSpec, load_adapter, new_adapter, save_adapter
from adaptd.modeling.sharing import LoraDelta, owned_bytes, shared_copy, unwrap_for_serving
from tests.unit.adapters.builders import LABELS, build_base

TEXTS = ["a short one", "a somewhat longer sentence to pad against"]


def trained_adapter(
    base: Path, out: Path, *, seed: int = 0, targets: tuple[str, ...] | None = None
) -> Path:
    """An adapter whose LoRA is off zero (a fresh one is a no-op) and whose head is not the
    base's: any mistake in sharing or in the delta shows in the logits."""
    torch.manual_seed(seed)
    spec = LoraSpec(rank=4, target_modules=targets)
    model = new_adapter(load_classifier(str(base), LABELS), spec)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.normal_(std=0.5)
    save_adapter(model, out, LABELS, {})
    return out


@pytest.fixture(scope="module", params=["bert", "gpt2"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    arch = request.param
    root = tmp_path_factory.mktemp(f"sharing-{arch}")
    base = build_base(root / arch, arch=arch)
    adapter = trained_adapter(base, root / "adapter", seed=1, targets=("all-linear",))
    return base, adapter


def _logits(model: Any, base: Path) -> torch.Tensor:
    batch = load_tokenizer(str(base))(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**batch).logits.float()


@pytest.mark.filterwarnings("ignore:fan_in_fan_out:UserWarning")
def test_a_shared_version_gives_peft_s_logits_and_copies_no_base_tensor(setup: Any) -> None:
    base, adapter = setup
    host_base = load_classifier(str(base), LABELS).eval()
    before = {n: p.clone() for n, p in host_base.state_dict().items()}
    reference = load_adapter(load_classifier(str(base), LABELS), adapter).eval()
    merged = load_adapter(load_classifier(str(base), LABELS), adapter).merge_and_unload().eval()

    version = unwrap_for_serving(load_adapter(shared_copy(host_base), adapter))

    want = _logits(reference, base)
    assert not torch.allclose(want, _logits(host_base, base), atol=1e-3), "adapter must matter"
    torch.testing.assert_close(_logits(version, base), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(_logits(merged, base), want, atol=1e-5, rtol=1e-5)
    deltas = [m for m in version.modules() if isinstance(m, LoraDelta)]
    assert deltas, "every plain LoRA layer becomes a LoraDelta"
    assert not any("lora_" in n for n, _ in version.named_parameters()), "no peft layers left"
    base_ptrs = {p.data_ptr() for p in host_base.parameters()}
    for delta in deltas:
        assert delta.base_layer.weight.data_ptr() in base_ptrs, "base weights are shared"
    # building a version leaves the host's base exactly as it was (no LoRA, no merge into it)
    assert not any("lora" in n for n, _ in host_base.named_modules())
    for name, tensor in host_base.state_dict().items():
        assert torch.equal(tensor, before[name]), name


@pytest.mark.filterwarnings("ignore:fan_in_fan_out:UserWarning")
def test_a_version_owns_exactly_its_adapter_s_tensors(setup: Any) -> None:
    from safetensors.torch import load_file

    base, adapter = setup
    host_base = load_classifier(str(base), LABELS).eval()
    version = unwrap_for_serving(load_adapter(shared_copy(host_base), adapter))
    saved = load_file(str(adapter / "adapter_model.safetensors"))
    adapter_bytes = sum(t.numel() * t.element_size() for t in saved.values())
    assert owned_bytes(version, host_base) == adapter_bytes
    full = sum(p.numel() * p.element_size() for p in host_base.parameters())
    assert owned_bytes(shared_copy(host_base), host_base) == 0
    assert owned_bytes(load_classifier(str(base), LABELS), host_base) >= full


def test_a_bfloat16_version_stays_close_to_float32_and_keeps_a_float32_head(
    tmp_path: Path,
) -> None:
    base = build_base(tmp_path / "bert")
    adapter = trained_adapter(base, tmp_path / "adapter", seed=2, targets=None)
    full_base = load_classifier(str(base), LABELS)
    full = unwrap_for_serving(load_adapter(shared_copy(full_base), adapter))
    half_base = load_classifier(str(base), LABELS, dtype="bfloat16")
    half = unwrap_for_serving(load_adapter(shared_copy(half_base), adapter))
    assert half.encoder.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    assert half.head.weight.dtype == torch.float32
    deltas = [m for m in half.modules() if isinstance(m, LoraDelta)]
    assert deltas and all(d.a_t.dtype == torch.bfloat16 for d in deltas)
    got, want = _logits(half, base), _logits(full, base)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=0.05, rtol=0.05)


def _peft_adapter(base: Path, out: Path, **config: Any) -> Path:
    """An adapter saved from a LoraConfig of the test's choosing, LoRA and head off their init."""
    from peft import LoraConfig, TaskType, get_peft_model

    torch.manual_seed(3)
    model = get_peft_model(
        load_classifier(str(base), LABELS), LoraConfig(task_type=TaskType.SEQ_CLS, **config)
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name or "magnitude" in name:
                param.normal_(std=0.5)
    save_adapter(model, out, LABELS, {})
    return out


@pytest.mark.parametrize(
    ("arch", "config"),
    [
        ("bert", {"r": 4, "lora_alpha": 8}),
        ("bert", {"r": 4, "lora_alpha": 8, "target_modules": "all-linear"}),
        ("bert", {"r": 8, "lora_alpha": 16, "use_rslora": True}),
        ("llama", {"r": 4, "lora_alpha": 16, "target_modules": "all-linear"}),
    ],
)
def test_a_plain_lora_built_without_peft_is_the_tree_peft_builds(
    arch: str, config: dict[str, Any], tmp_path: Path
) -> None:
    from adaptd.modeling.lora import read_plain_lora
    from adaptd.modeling.sharing import attach_plain, tree_copy

    base = build_base(tmp_path / arch, arch=arch)  # type: ignore[arg-type]
    adapter = _peft_adapter(base, tmp_path / "adapter", **config)
    host_base = load_classifier(str(base), LABELS).eval()
    before = {n: p.clone() for n, p in host_base.state_dict().items()}
    via_peft = unwrap_for_serving(load_adapter(shared_copy(host_base), adapter))

    plain = read_plain_lora(adapter, head=host_base.head_name)
    assert plain is not None
    version = attach_plain(tree_copy(host_base), plain, source=adapter)

    want = _logits(via_peft, base)
    assert not torch.allclose(want, _logits(host_base, base), atol=1e-3), "adapter must matter"
    torch.testing.assert_close(_logits(version, base), want, atol=1e-6, rtol=1e-6)
    types = {n: type(m) for n, m in version.named_modules()}
    assert types == {n: type(m) for n, m in via_peft.named_modules()}
    assert owned_bytes(version, host_base) == owned_bytes(via_peft, host_base)
    assert not version.training
    assert not {id(m) for m in version.modules()} & {id(m) for m in host_base.modules()}
    base_ptrs = {p.data_ptr() for p in host_base.parameters()}
    assert host_base.head.weight.data_ptr() not in {p.data_ptr() for p in version.parameters()}
    assert {p.data_ptr() for p in version.encoder.parameters()} <= base_ptrs
    for name, tensor in host_base.state_dict().items():
        assert torch.equal(tensor, before[name]), f"the base's {name} changed"


def test_a_tree_copy_has_its_own_modules_and_tables_and_the_original_s_tensors() -> None:
    from adaptd.modeling.sharing import tree_copy

    shared = torch.nn.Linear(3, 3)
    model = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    model.register_buffer("scale", torch.ones(3))
    twin = tree_copy(model)
    assert twin[0] is twin[2], "a module registered twice stays one module"
    assert twin[0] is not shared and twin.scale is model.scale and twin[0].weight is shared.weight
    twin[0].register_forward_hook(lambda *_: None)
    twin[1] = torch.nn.Tanh()
    twin[0].weight = torch.nn.Parameter(torch.zeros(3, 3))
    assert not shared._forward_hooks and isinstance(model[1], torch.nn.ReLU)
    assert not torch.equal(shared.weight, twin[0].weight), "the original keeps its weight"


@pytest.mark.parametrize(
    "config",
    [
        {"r": 4, "lora_alpha": 8, "use_dora": True},
        {"r": 4, "lora_alpha": 8, "rank_pattern": {"query": 2}},
        {"r": 4, "lora_alpha": 8, "lora_bias": True},
    ],
    ids=["dora", "rank_pattern", "lora_bias"],
)
# peft takes a LoRA bias (1-D lora_B.bias) for an ungathered ZeRO-3 shard when it saves one
@pytest.mark.filterwarnings("ignore:Adapter 'default'.*invalid shape")
def test_anything_but_plain_lora_is_left_to_peft(config: dict[str, Any], tmp_path: Path) -> None:
    from adaptd.modeling.lora import read_plain_lora

    base = build_base(tmp_path / "bert")
    adapter = _peft_adapter(base, tmp_path / "adapter", **config)
    assert read_plain_lora(adapter, head="classifier") is None


def test_a_plain_adapter_that_does_not_fit_the_base_names_the_layer(tmp_path: Path) -> None:
    from adaptd.errors import IncompatibleAdapterError
    from adaptd.modeling.lora import read_plain_lora
    from adaptd.modeling.sharing import attach_plain

    small = build_base(tmp_path / "small", hidden=32)
    wide = build_base(tmp_path / "wide", hidden=64)
    adapter = _peft_adapter(wide, tmp_path / "adapter", r=4, lora_alpha=8)
    plain = read_plain_lora(adapter, head="classifier")
    assert plain is not None
    host_base = load_classifier(str(small), LABELS).eval()
    with pytest.raises(IncompatibleAdapterError, match=r"lora_A \(4, 64\) does not fit"):
        attach_plain(shared_copy(host_base), plain, source=adapter)
