"""The fine-tune in reduced precision and the device it asks for, on CPU: bfloat16 base weights
and bfloat16 autocast run here for real; the CUDA branches are decisions tested as such."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from adaptd.errors import ConfigError
from adaptd.retraining.ray_executor import RayExecutor
from adaptd.retraining.trainer import train
from tests.unit.retraining.test_trainer import accuracy, make_spec


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_bfloat16_weights_with_bfloat16_autocast_learn_and_save_float32_adapters(
    tmp_path: Path, tiny_base: Path
) -> None:
    spec = make_spec(tmp_path, tiny_base, dtype="bfloat16", autocast="bfloat16", device="auto")
    result = train(spec, lambda p: None)
    assert result.device == "cpu"
    assert accuracy(result.predictions["candidate"]["recent"]) >= 0.8
    weights = load_file(str(tmp_path / "adapter" / "adapter_model.safetensors"))
    # what was learned (LoRA, head) is float32 even though the frozen base was bfloat16
    assert weights and {t.dtype for t in weights.values()} == {torch.float32}
    assert any(float(t.abs().max()) > 0 for k, t in weights.items() if "lora_B" in k)


def test_float16_autocast_on_cpu_is_refused_before_any_work(
    tmp_path: Path, tiny_base: Path
) -> None:
    spec = make_spec(tmp_path, tiny_base, autocast="float16", device="cpu")
    with pytest.raises(ConfigError, match="retraining.autocast: float16 needs a CUDA device"):
        train(spec, lambda p: None)
    assert not (tmp_path / "adapter").exists()


class _FakeRay:
    def __init__(self, gpus: float) -> None:
        self.gpus = gpus

    def is_initialized(self) -> bool:
        return True

    def cluster_resources(self) -> dict[str, float]:
        return {"CPU": 16.0, "GPU": self.gpus} if self.gpus else {"CPU": 16.0}


def _executor(gpus: float) -> Any:
    executor = object.__new__(RayExecutor)  # the real __init__ only imports ray
    executor._ray = _FakeRay(gpus)
    return executor


@pytest.mark.parametrize(
    ("device", "cluster_gpus", "num_gpus", "worker"),
    [("cuda:1", 2, 1, "cuda"), ("auto", 1, 1, "cuda"), ("auto", 0, 0, "cpu"), ("cpu", 4, 0, "cpu")],
)
def test_the_ray_task_asks_for_a_gpu_when_training_on_cuda(
    tmp_path: Path, tiny_base: Path, device: str, cluster_gpus: float, num_gpus: int, worker: str
) -> None:
    spec = make_spec(tmp_path, tiny_base, device=device, threads=2)
    options, sent = _executor(cluster_gpus).task_options(spec)
    resources = {k: options[k] for k in ("num_cpus", "num_gpus", "max_retries")}
    assert resources == {"num_cpus": 2, "num_gpus": num_gpus, "max_retries": 0}
    # the worker sees only the GPU Ray gave it, so the daemon's index must not travel
    assert sent.device == worker and sent.base == spec.base


def test_a_cuda_ray_run_without_cluster_gpus_fails_with_a_reason(
    tmp_path: Path, tiny_base: Path
) -> None:
    from adaptd.retraining.executors import TrainingFailed

    spec = make_spec(tmp_path, tiny_base, device="cuda")
    with pytest.raises(TrainingFailed, match="the Ray cluster has no GPU"):
        _executor(0).run(spec, timeout_s=5, on_progress=lambda p: None)
