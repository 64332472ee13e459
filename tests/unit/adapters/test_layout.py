from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaptd.adapters.layout import AdapterSummary, check_compatible, content_hash
from adaptd.errors import IncompatibleAdapterError
from adaptd.modeling.base import base_module_shapes, inspect_base
from tests.unit.adapters.builders import (
    LABELS,
    build_adapter,
    build_base,
    drop_tensors,
    edit_config,
)

# --------------------------------------------------------------------------- content hash


def test_hash_is_64_hex_and_stable_across_copies(adapter, tmp_path):
    first = content_hash(adapter)
    assert len(first) == 64
    assert int(first, 16) >= 0
    assert content_hash(adapter) == first
    copy = shutil.copytree(adapter, tmp_path / "copy")
    assert content_hash(copy) == first


def test_hash_ignores_readme_and_other_extra_files(adapter):
    before = content_hash(adapter)
    (adapter / "README.md").write_text("a different model card")
    (adapter / "tokenizer.json").write_text("{}")
    assert content_hash(adapter) == before


@pytest.mark.parametrize(
    "name", ["adapter_config.json", "adapter_model.safetensors", "adaptd.json"]
)
def test_hash_changes_with_one_byte_of_any_defining_file(adapter, name):
    before = content_hash(adapter)
    path = adapter / name
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01
    path.write_bytes(bytes(data))
    assert content_hash(adapter) != before


def test_hash_changes_when_adaptd_json_is_removed(adapter):
    before = content_hash(adapter)
    (adapter / "adaptd.json").unlink()
    assert content_hash(adapter) != before


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    a=st.tuples(st.binary(max_size=40), st.binary(max_size=40), st.binary(max_size=40)),
    b=st.tuples(st.binary(max_size=40), st.binary(max_size=40), st.binary(max_size=40)),
)
def test_hash_equal_exactly_when_contents_are_equal(tmp_path_factory, a, b):
    """Including contents that concatenate alike (bytes shifted from one file to the next)."""
    names = ("adaptd.json", "adapter_config.json", "adapter_model.safetensors")

    def write(contents: tuple[bytes, ...]) -> Path:
        d = tmp_path_factory.mktemp("h")
        for name, content in zip(names, contents, strict=True):
            (d / name).write_bytes(content)
        return d

    assert (content_hash(write(a)) == content_hash(write(b))) == (a == b)


def test_hash_of_a_directory_without_weights_names_the_missing_file(adapter):
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(IncompatibleAdapterError, match="no adapter_model.safetensors"):
        content_hash(adapter)


# --------------------------------------------------------------------------- compatible


def test_a_good_adapter_is_summarised(adapter, base_info, base_modules):
    summary = check_compatible(adapter, base_info, LABELS, base_module_names=base_modules)
    assert isinstance(summary, AdapterSummary)
    assert summary.rank == 4
    assert summary.alpha == 8.0
    assert set(summary.target_modules) == {"query", "value"}
    assert summary.head == "classifier.weight"
    assert summary.head_shape == (2, 32)
    assert summary.labels == LABELS
    # 2 layers x (query, value) x (A 4x32 + B 32x4) + head 2x32 + bias 2
    assert summary.n_params == 2 * 2 * (4 * 32 + 32 * 4) + 2 * 32 + 2
    assert summary.files == ("adaptd.json", "adapter_config.json", "adapter_model.safetensors")
    assert json.loads(json.dumps(summary.as_dict()))["head_shape"] == [2, 32]


def test_an_adapter_trained_elsewhere_without_adaptd_json_is_accepted_on_cls_pooling(
    tiny_base, tmp_path
):
    plain = build_adapter(tiny_base, tmp_path / "plain", plain_peft=True)
    assert not (plain / "adaptd.json").exists()
    cls_base = inspect_base(str(tiny_base), LABELS, pooling="cls")
    modules = base_module_shapes(str(tiny_base), LABELS, pooling="cls")
    summary = check_compatible(plain, cls_base, LABELS, base_module_names=modules)
    assert summary.labels is None
    assert summary.head_shape[0] == 2
    assert summary.pooling == "cls"


def test_an_adapter_without_recorded_pooling_is_refused_on_mean_naming_both(
    tiny_base, tmp_path, base_info, base_modules
):
    plain = build_adapter(tiny_base, tmp_path / "plain", plain_peft=True)
    assert base_info.pooling == "mean"
    with pytest.raises(IncompatibleAdapterError) as e:
        check_compatible(plain, base_info, LABELS, base_module_names=base_modules)
    message = str(e.value)
    assert "trained with cls pooling" in message and "no pooling recorded" in message
    assert "the base model pools by mean" in message and "model.pooling: cls" in message


def test_an_adapter_trained_with_another_pooling_is_refused(adapter, tiny_base, base_info):
    assert json.loads((adapter / "adaptd.json").read_text())["pooling"] == "mean"
    last = inspect_base(str(tiny_base), LABELS, pooling="last")
    with pytest.raises(
        IncompatibleAdapterError, match="trained with mean pooling .* pools by last"
    ):
        check_compatible(adapter, last, LABELS)
    assert check_compatible(adapter, base_info, LABELS).pooling == "mean"


def test_wrong_label_count_names_head_and_labels(adapter, tiny_base):
    three = ("negative", "neutral", "positive")
    base = inspect_base(str(tiny_base), three)
    (adapter / "adaptd.json").unlink()
    with pytest.raises(IncompatibleAdapterError) as e:
        check_compatible(adapter, base, three)
    message = str(e.value)
    assert "classifier.weight has 2 outputs" in message
    assert "label set has 3" in message
    assert "neutral" in message


def test_recorded_labels_must_equal_configured_labels(adapter, base_info):
    with pytest.raises(
        IncompatibleAdapterError, match=r"records labels \['negative', 'positive'\]"
    ):
        check_compatible(adapter, base_info, ["bad", "good"])


def test_same_labels_in_another_order_are_refused_with_the_reason(adapter, base_info):
    with pytest.raises(IncompatibleAdapterError, match="another order"):
        check_compatible(adapter, base_info, ["positive", "negative"])


@pytest.mark.parametrize(
    ("remove", "needle"),
    [
        ("adapter_config.json", "no adapter_config.json (not a PEFT adapter directory)"),
        ("adapter_model.safetensors", "no adapter_model.safetensors"),
    ],
)
def test_missing_files_are_named(adapter, base_info, remove, needle):
    (adapter / remove).unlink()
    with pytest.raises(
        IncompatibleAdapterError, match=needle.replace("(", r"\(").replace(")", r"\)")
    ):
        check_compatible(adapter, base_info, LABELS)


def test_pickled_bin_weights_are_refused_with_the_fix(adapter, base_info):
    (adapter / "adapter_model.safetensors").rename(adapter / "adapter_model.bin")
    with pytest.raises(IncompatibleAdapterError, match="safe_serialization=True"):
        check_compatible(adapter, base_info, LABELS)


def test_a_missing_directory_is_named(tmp_path, base_info):
    with pytest.raises(IncompatibleAdapterError, match="nowhere: not a directory"):
        check_compatible(tmp_path / "nowhere", base_info, LABELS)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) - 10],  # truncated copy
        lambda b: b"not a safetensors file at all",
        lambda b: b"",
    ],
    ids=["truncated", "garbage", "empty"],
)
def test_corrupted_safetensors_are_refused(adapter, base_info, damage):
    path = adapter / "adapter_model.safetensors"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(IncompatibleAdapterError, match="corrupted safetensors"):
        check_compatible(adapter, base_info, LABELS)


def test_unparseable_adapter_config_is_named(adapter, base_info):
    (adapter / "adapter_config.json").write_text("{not json")
    with pytest.raises(IncompatibleAdapterError, match="adapter_config.json: unreadable"):
        check_compatible(adapter, base_info, LABELS)


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"peft_type": "IA3"}, "peft_type is 'IA3', not 'LORA'"),
        ({"task_type": "CAUSAL_LM"}, "task_type is 'CAUSAL_LM', not 'SEQ_CLS'"),
        ({"r": 8}, "says r=8 but"),
        ({"r": 0}, "r is 0"),
    ],
)
def test_config_mismatches_are_named(adapter, base_info, changes, needle):
    edit_config(adapter, **changes)
    with pytest.raises(IncompatibleAdapterError, match=needle):
        check_compatible(adapter, base_info, LABELS)


def test_target_modules_absent_from_the_base_are_named(adapter, base_info, base_modules):
    edit_config(adapter, target_modules=["c_attn", "query"])
    with pytest.raises(
        IncompatibleAdapterError, match=r"absent from the base model \(bert\): \['c_attn'\]"
    ):
        check_compatible(adapter, base_info, LABELS, base_module_names=base_modules)
    # Without the base's module names the check cannot be made, and is not pretended.
    check_compatible(adapter, base_info, LABELS)


def test_target_module_regex_must_match_some_base_module(adapter, base_info, base_modules):
    edit_config(adapter, target_modules=r".*\.attention\.self\.(query|value)")
    check_compatible(adapter, base_info, LABELS, base_module_names=base_modules)
    edit_config(adapter, target_modules=r".*\.attn\.c_attn")
    with pytest.raises(IncompatibleAdapterError, match="matches no module"):
        check_compatible(adapter, base_info, LABELS, base_module_names=base_modules)


# peft warns that it switches GPT-2's Conv1D layers to fan_in_fan_out itself; expected here.
GPT2_FAN_IN_FAN_OUT = "ignore:fan_in_fan_out is set to False:UserWarning"


@pytest.mark.filterwarnings(GPT2_FAN_IN_FAN_OUT)
def test_a_gpt2_adapter_fits_a_gpt2_base_with_conv1d_shapes(tmp_path):
    gpt2 = build_base(tmp_path / "gpt2", arch="gpt2")
    adapter = build_adapter(gpt2, tmp_path / "gpt2-adapter")
    modules = base_module_shapes(str(gpt2), LABELS)
    # Conv1D stores (in, out) like nn.Linear's in_features/out_features: c_attn is 32 -> 96.
    assert modules["transformer.h.0.attn.c_attn"] == (32, 96)
    summary = check_compatible(
        adapter, inspect_base(str(gpt2), LABELS), LABELS, base_module_names=modules
    )
    assert summary.head == "score.weight"
    assert summary.head_shape == (2, 32)


def test_an_adapter_of_another_architecture_is_refused(tmp_path, base_info, base_modules):
    llama = build_base(tmp_path / "llama", arch="llama")
    other = build_adapter(llama, tmp_path / "llama-adapter")
    with pytest.raises(IncompatibleAdapterError, match="trained on a llama base model"):
        check_compatible(other, base_info, LABELS, base_module_names=base_modules)
    # With the origin unknown (moved, hub id), the module names still give it away.
    edit_config(other, base_model_name_or_path="someone/elsewhere")
    meta = json.loads((other / "adaptd.json").read_text())
    del meta["base_model_type"]
    (other / "adaptd.json").write_text(json.dumps(meta))
    with pytest.raises(IncompatibleAdapterError, match="absent from the base model"):
        check_compatible(other, base_info, LABELS, base_module_names=base_modules)


def test_recorded_base_model_type_is_compared(adapter, base_info):
    meta = json.loads((adapter / "adaptd.json").read_text())
    (adapter / "adaptd.json").write_text(json.dumps({**meta, "base_model_type": "qwen2"}))
    with pytest.raises(IncompatibleAdapterError, match="trained on a qwen2 base model"):
        check_compatible(adapter, base_info, LABELS)


def test_an_adapter_of_a_wider_sibling_is_refused_by_shape(tmp_path, base_info, base_modules):
    wide = build_base(tmp_path / "wide", hidden=48)
    other = build_adapter(wide, tmp_path / "wide-adapter")
    edit_config(other, base_model_name_or_path="elsewhere")
    with pytest.raises(IncompatibleAdapterError, match="in features 48, the base model's"):
        check_compatible(other, base_info, LABELS, base_module_names=base_modules)


def test_a_head_of_the_wrong_width_is_refused_by_shape(adapter, base_info, base_modules):
    from safetensors.torch import load_file, save_file

    path = adapter / "adapter_model.safetensors"
    tensors = load_file(str(path))
    tensors["base_model.model.classifier.weight"] = tensors[
        "base_model.model.classifier.weight"
    ].repeat(1, 2)
    save_file(tensors, str(path))
    with pytest.raises(IncompatibleAdapterError, match="takes 64 features"):
        check_compatible(adapter, base_info, LABELS, base_module_names=base_modules)


def test_an_adapter_without_its_head_is_refused(adapter, base_info):
    drop_tensors(adapter, "classifier")
    with pytest.raises(IncompatibleAdapterError, match="no classifier head saved"):
        check_compatible(adapter, base_info, LABELS)


def test_an_adapter_without_lora_weights_is_refused(adapter, base_info):
    drop_tensors(adapter, "lora_")
    with pytest.raises(IncompatibleAdapterError, match="holds no LoRA weights"):
        check_compatible(adapter, base_info, LABELS)
