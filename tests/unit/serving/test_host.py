from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from adaptd.errors import IncompatibleAdapterError
from adaptd.serving import host as host_module
from adaptd.serving.host import ModelHost
from tests.unit.modeling.test_sharing import trained_adapter
from tests.unit.serving.helpers import LABELS, build_adapter, build_base


@pytest.fixture
def host(tiny_base: Path) -> ModelHost:
    return ModelHost(base=str(tiny_base), labels=LABELS, max_length=16, threads=1)


def test_versions_share_the_base_weights_and_own_only_their_adapter(
    host: ModelHost, adapter_a: Path, adapter_b: Path
) -> None:
    """Active, offered and previous loaded at once cost one base model plus three adapters."""
    versions = [host.build(v, d) for v, d in (("a", adapter_a), ("b", adapter_b), ("c", adapter_a))]
    base_bytes = sum(p.numel() * p.element_size() for p in host._base_model.parameters())
    for built in versions:
        assert not built.model.training and built.version in "abc"
        names = [name for name, _ in built.model.named_parameters()]
        assert not any("lora_" in n for n in names), "no peft layers on the serving path"
        assert 0 < built.owned_bytes < base_bytes / 10
    embedding = [v.model.encoder.embeddings.word_embeddings.weight for v in versions]
    assert len({e.data_ptr() for e in embedding}) == 1
    assert versions[0].model is not versions[2].model, "each version is its own module tree"


def test_merge_adapters_builds_a_full_merged_copy(tiny_base: Path, adapter_a: Path) -> None:
    host = ModelHost(base=str(tiny_base), labels=LABELS, max_length=16, merge_adapters=True)
    built = host.build("a", adapter_a)
    base_bytes = sum(p.numel() * p.element_size() for p in host._base_model.parameters())
    assert built.owned_bytes >= base_bytes
    assert not any("lora_" in n for n, _ in built.model.named_parameters())


def test_a_bfloat16_host_serves_probabilities_close_to_float32(
    host: ModelHost, tiny_base: Path, tmp_path: Path
) -> None:
    from adaptd.metrics import new_metrics
    from adaptd.serving.batcher import Batcher

    adapter = trained_adapter(tiny_base, tmp_path / "trained")
    half = ModelHost(base=str(tiny_base), labels=LABELS, max_length=16, dtype="bfloat16")
    results = {}
    for name, h in (("float32", host), ("bfloat16", half)):
        h.offer(h.build(name, adapter))
        batcher = Batcher(h, new_metrics(), max_batch=8, max_wait_ms=0, queue_size=16)
        future = batcher.submit(["a short one", "a somewhat longer sentence to pad against"])
        batcher.run_batch(batcher.take_batch(block=False))
        results[name] = future.result(timeout=0)
    assert half.dtype == "bfloat16"
    for full, low in zip(results["float32"], results["bfloat16"], strict=True):
        assert low.embedding.dtype == np.float32
        np.testing.assert_allclose(low.probabilities, full.probabilities, atol=0.05)
        assert abs(sum(low.probabilities) - 1) < 1e-5


def test_float16_or_cuda_on_a_cpu_host_is_a_config_error(
    tiny_base: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from adaptd.errors import ConfigError

    with pytest.raises(ConfigError, match="model.dtype: float16 needs a CUDA device"):
        ModelHost(base=str(tiny_base), labels=LABELS, device="cpu", dtype="float16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="model.device: cuda:1 requested but torch sees no"):
        ModelHost(base=str(tiny_base), labels=LABELS, device="cuda:1")
    assert ModelHost(base=str(tiny_base), labels=LABELS, device="auto").device == "cpu"


def test_an_adapter_for_another_label_set_is_refused_naming_the_mismatch(
    host: ModelHost, tiny_base: Path, tmp_path: Path
) -> None:
    three = build_adapter(tiny_base, tmp_path / "three", ("neg", "neu", "pos"))
    with pytest.raises(IncompatibleAdapterError, match="labels"):
        host.build("three", three)
    assert host.active is None


def test_an_offer_takes_effect_only_at_the_next_batch(
    host: ModelHost, adapter_a: Path, adapter_b: Path
) -> None:
    a, b = host.build("a", adapter_a), host.build("b", adapter_b)
    host.offer(a)
    assert host.active is None and host.target_version() == "a"
    model, swap = host.model_for_next_batch()
    assert model is a and swap is not None and swap.old is None
    host.offer(b)
    assert host.active is a, "an offer must not change the model a running batch uses"
    model, swap = host.model_for_next_batch()
    assert model is b and swap is not None and swap.old is a
    assert host.previous is a
    assert host.ready_for("a") is a, "the previous version stays loaded for instant rollback"
    model, swap = host.model_for_next_batch()
    assert model is b and swap is None


def test_a_swap_reports_the_bytes_of_the_version_it_dropped(
    host: ModelHost, adapter_a: Path, adapter_b: Path
) -> None:
    """Active and previous stay loaded; the version pushed out of the previous slot is freed."""
    a, b, c = (host.build(v, d) for v, d in (("a", adapter_a), ("b", adapter_b), ("c", adapter_a)))
    released = []
    for built in (a, b, c):
        host.offer(built)
        _, swap = host.model_for_next_batch()
        assert swap is not None
        released.append(swap.released_bytes)
    assert released == [0, 0, a.owned_bytes] and a.owned_bytes > 0
    host.offer(b)  # a rollback to the previous slot: nothing leaves the host
    _, swap = host.model_for_next_batch()
    assert swap is not None and swap.released_bytes == 0
    assert host.previous is c
    again = host.build("b", adapter_b)  # the same version built again: the old object goes
    host.offer(again)
    _, swap = host.model_for_next_batch()
    assert swap is not None and swap.released_bytes == b.owned_bytes and host.previous is c


# peft warns that GPT-2's Conv1D needs fan_in_fan_out and sets it itself: expected, harmless.
@pytest.mark.filterwarnings("ignore:fan_in_fan_out:UserWarning")
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_decoder_architectures_serve(arch: str, tmp_path: Path) -> None:
    from adaptd.metrics import new_metrics
    from adaptd.serving.batcher import Batcher

    base = build_base(tmp_path / arch, arch=arch)  # type: ignore[arg-type]
    adapter = build_adapter(base, tmp_path / f"{arch}-adapter")
    host = ModelHost(base=str(base), labels=LABELS, max_length=16)
    host.offer(host.build(arch, adapter))
    batcher = Batcher(host, new_metrics(), max_batch=8, max_wait_ms=0, queue_size=16)
    future = batcher.submit(["a short one", "a somewhat longer sentence to pad against"])
    batcher.run_batch(batcher.take_batch(block=False))
    predictions = future.result(timeout=0)
    assert [p.adapter for p in predictions] == [arch, arch]
    assert all(abs(sum(p.probabilities) - 1) < 1e-5 for p in predictions)
    assert predictions[0].embedding.shape == (32,)


def test_a_trained_adapter_serves_the_logits_it_was_trained_to(
    host: ModelHost, tiny_base: Path, tmp_path: Path
) -> None:
    """Train (LoRA moved off zero, head fitted) -> save -> build: the merged serving model gives
    the trained model's logits, so pooling and head travel with the adapter."""
    import torch

    from adaptd.modeling.base import load_classifier
    from adaptd.modeling.lora import LoraSpec, new_adapter, save_adapter

    torch.manual_seed(3)
    trained = new_adapter(load_classifier(str(tiny_base), LABELS), LoraSpec(rank=4))
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.normal_()
    trained.eval()
    save_adapter(trained, tmp_path / "trained", LABELS, {})
    built = host.build("trained", tmp_path / "trained")
    assert host.pooling == "mean" and "auto" in host.pooling_reason
    batch = host.tokenizer(
        ["a short one", "a somewhat longer sentence to pad against"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        want = trained(**batch).logits
        got = built.model(**batch).logits
    assert not torch.allclose(want, torch.zeros_like(want))
    assert torch.allclose(got, want, atol=1e-5)


def test_a_dora_adapter_is_built_by_peft_and_serves_its_trained_logits(
    host: ModelHost, tiny_base: Path, tmp_path: Path
) -> None:
    """Plain LoRA is built from its tensors (the test above); anything else, DoRA here, goes
    through peft's loading and the warm-up as before, and serves what was trained."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from adaptd.modeling.base import load_classifier
    from adaptd.modeling.lora import read_plain_lora, save_adapter

    torch.manual_seed(4)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, use_dora=True)
    trained = get_peft_model(load_classifier(str(tiny_base), LABELS), config)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.normal_()
    trained.eval()
    save_adapter(trained, tmp_path / "dora", LABELS, {})
    assert read_plain_lora(tmp_path / "dora", head="classifier") is None
    tokenizer = host.tokenizer

    def busy(*args: object, **kwargs: object) -> None:
        raise AssertionError("a build tokenizes nothing: the batcher owns the tokenizer")

    host.tokenizer = busy  # a fast tokenizer's settings are per call, not per thread
    built = host.build("dora", tmp_path / "dora")
    host.tokenizer = tokenizer
    batch = host.tokenizer(["a short one", "a longer sentence"], padding=True, return_tensors="pt")
    with torch.no_grad():
        want = trained(**batch).logits
        got = built.model(**batch).logits
    assert torch.allclose(got, want, atol=1e-5)


def test_a_host_pooling_by_another_rule_refuses_the_adapter(tiny_base: Path, adapter_a: Path):
    cls_host = ModelHost(base=str(tiny_base), labels=LABELS, pooling="cls", max_length=16)
    assert (cls_host.pooling, cls_host.pooling_reason) == ("cls", "set in model.pooling")
    with pytest.raises(IncompatibleAdapterError, match="trained with mean pooling"):
        cls_host.build("a", adapter_a)


def test_a_gguf_file_as_model_base_serves_a_prediction(tmp_path: Path) -> None:
    """model.base naming a .gguf file (how SmolLM2-135M-Instruct ships): tokenizer, config,
    meta-device shapes and classifier all come from the one file; a decoder, so last pooling."""
    from adaptd.metrics import new_metrics
    from adaptd.modeling.base import load_classifier, resolve_base
    from adaptd.modeling.lora import LoraSpec, new_adapter, save_adapter
    from adaptd.modeling.tiny import build_tiny_gguf
    from adaptd.serving.batcher import Batcher

    gguf_file = resolve_base(str(build_tiny_gguf(tmp_path / "models" / "tiny.gguf")))
    adapter = tmp_path / "gguf-adapter"
    save_adapter(
        new_adapter(load_classifier(gguf_file, LABELS), LoraSpec(rank=4)), adapter, LABELS, {}
    )
    host = ModelHost(base=gguf_file, labels=LABELS, max_length=16)
    assert host.base_info.model_type == "llama" and host.pooling == "last"
    assert host.tokenizer.pad_token_id is not None and host.tokenizer.padding_side == "right"
    host.offer(host.build("gguf", adapter))
    batcher = Batcher(host, new_metrics(), max_batch=8, max_wait_ms=0, queue_size=16)
    future = batcher.submit(["a short one", "a somewhat longer sentence to pad against"])
    batcher.run_batch(batcher.take_batch(block=False))
    predictions = future.result(timeout=0)
    assert [p.adapter for p in predictions] == ["gguf", "gguf"]
    assert all(abs(sum(p.probabilities) - 1) < 1e-5 for p in predictions)


def test_a_model_base_file_that_is_not_gguf_is_a_config_error(tmp_path: Path) -> None:
    from adaptd.errors import ConfigError
    from adaptd.modeling.base import resolve_base

    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"model.base: .*model.bin is a file but not a .gguf"):
        resolve_base(str(tmp_path / "model.bin"))


def test_freezing_takes_the_loaded_host_out_of_the_collector_s_full_walk(
    host: ModelHost,
) -> None:
    import gc

    from adaptd.serving.host import freeze_startup_objects

    try:
        frozen = freeze_startup_objects()
        # Frozen objects freed since (by a thread a test before this one left running) leave
        # the permanent generation, so the count may only have shrunk, and barely.
        assert frozen > 10_000 and frozen * 0.99 <= gc.get_freeze_count() <= frozen
        assert len(gc.get_objects(generation=2)) < frozen / 10
    finally:
        gc.unfreeze()  # the test process builds many hosts: let them be collected


# --------------------------------------------------------------------------- build path


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread niceness is a Linux property")
def test_a_build_runs_in_a_nicer_thread_with_short_gil_switches(
    host: ModelHost, adapter_a: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}
    attach = host._attach

    def spy(adapter_dir: Path) -> object:
        seen["thread"] = threading.current_thread().name
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        seen["switch"] = sys.getswitchinterval()
        return attach(adapter_dir)

    monkeypatch.setattr(host, "_attach", spy)
    caller_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    switch = sys.getswitchinterval()
    host.build("a", adapter_a)
    assert seen["thread"] == "adaptd-build"
    assert seen["nice"] == min(19, caller_nice + host_module.BUILD_NICENESS)
    assert seen["switch"] == host_module.BUILD_SWITCH_INTERVAL_S < switch
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller_nice
    assert sys.getswitchinterval() == switch, "restored once the build is over"


def test_a_failed_build_raises_in_the_caller_and_restores_the_switch_interval(
    host: ModelHost, tmp_path: Path
) -> None:
    switch = sys.getswitchinterval()
    with pytest.raises(IncompatibleAdapterError):
        host.build("missing", tmp_path / "no-such-adapter")
    assert sys.getswitchinterval() == switch


def test_the_warm_up_runs_on_one_thread_and_serving_threads_keep_their_count() -> None:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        inside: list[int] = []
        served: list[int] = []
        entered, release = threading.Event(), threading.Event()

        def warm_up() -> None:
            with host_module._one_intra_op_thread():
                inside.append(torch.get_num_threads())
                entered.set()
                release.wait(10)

        def serve() -> None:
            # A serving thread whose first torch call falls inside another thread's warm-up
            # would take its one thread for good without the pin.
            entered.wait(10)
            host_module._pin_intra_op_threads(2)
            release.set()
            served.append(torch.get_num_threads())

        threads = [threading.Thread(target=warm_up), threading.Thread(target=serve)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert inside == [1] and served == [2]
        assert torch.get_num_threads() == 2, "the default is restored after the warm-up"
    finally:
        torch.set_num_threads(before)


def test_batches_run_on_fewer_threads_while_a_child_is_lent_cores(tiny_base: Path) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        host = ModelHost(base=str(tiny_base), labels=LABELS, max_length=16, threads=3)
        # One long-lived thread, as the batcher: its count is pinned once and changed only
        # when the cores lent change.
        with ThreadPoolExecutor(max_workers=1) as batcher:

            def next_batch_threads() -> int:
                def run() -> int:
                    host.model_for_next_batch()
                    return torch.get_num_threads()

                return batcher.submit(run).result(10)

            assert next_batch_threads() == 3
            with host.lend_cores(1):
                assert next_batch_threads() == 2
                with host.lend_cores(4):  # a child asking more than there is leaves one
                    assert next_batch_threads() == 1
                assert next_batch_threads() == 2
            assert next_batch_threads() == 3, "the cores come back when the child is done"
    finally:
        torch.set_num_threads(before)
