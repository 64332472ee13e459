"""Device and precision decisions: every branch, the CUDA ones included, as pure functions."""

from __future__ import annotations

import pytest
import torch

from adaptd.errors import ConfigError
from adaptd.modeling.device import (
    autocast_context,
    check_autocast,
    check_dtype,
    needs_grad_scaler,
    pick_device,
    ray_gpus,
    resolve_device,
    worker_device,
)


@pytest.mark.parametrize(
    ("setting", "available", "count", "expected"),
    [
        ("auto", True, 2, "cuda"),
        ("auto", False, 0, "cpu"),
        ("auto", True, 0, "cpu"),  # a CUDA build with every device hidden
        ("cpu", True, 2, "cpu"),
        ("cuda", True, 1, "cuda"),
        ("cuda:1", True, 2, "cuda:1"),
    ],
)
def test_pick_device(setting: str, available: bool, count: int, expected: str) -> None:
    assert pick_device(setting, cuda_available=available, cuda_count=count, key="k") == expected


def test_cuda_without_a_device_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="model.device: cuda requested but torch sees no CUDA"):
        pick_device("cuda", cuda_available=False, cuda_count=0, key="model.device")


def test_a_cuda_index_past_the_last_device_names_the_range() -> None:
    with pytest.raises(ConfigError, match=r"cuda:2 requested but torch sees 2 .*cuda:0..cuda:1"):
        pick_device("cuda:2", cuda_available=True, cuda_count=2, key="model.device")


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(ConfigError, match="'gpu' is not auto, cpu, cuda or cuda:N"):
        pick_device("gpu", cuda_available=True, cuda_count=1, key="model.device")


def test_resolve_device_on_this_machine_follows_torch() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"


def test_float16_needs_cuda_and_bfloat16_does_not() -> None:
    check_dtype("float16", "cuda:0")
    check_dtype("bfloat16", "cpu")
    check_dtype("float32", "cpu")
    with pytest.raises(ConfigError, match="model.dtype: float16 needs a CUDA device, not cpu"):
        check_dtype("float16", "cpu")
    with pytest.raises(ConfigError, match="'int8' is not float32"):
        check_dtype("int8", "cpu")


def test_autocast_checks_and_contexts() -> None:
    check_autocast("none", "cpu")
    check_autocast("bfloat16", "cpu")
    check_autocast("float16", "cuda")
    with pytest.raises(ConfigError, match="retraining.autocast: float16 needs a CUDA device"):
        check_autocast("float16", "cpu")
    a, b = torch.ones(4, 4), torch.ones(4, 4)
    with autocast_context("none", "cpu"):
        assert (a @ b).dtype == torch.float32
    with autocast_context("bfloat16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16
    assert needs_grad_scaler("float16")
    assert not needs_grad_scaler("bfloat16") and not needs_grad_scaler("none")


@pytest.mark.parametrize(
    ("setting", "cluster_gpus", "expected"),
    [("cpu", 8, 0), ("auto", 0, 0), ("auto", 2, 1), ("cuda", 1, 1), ("cuda:3", 4, 1)],
)
def test_ray_gpu_request(setting: str, cluster_gpus: float, expected: int) -> None:
    assert ray_gpus(setting, cluster_gpus=cluster_gpus) == expected
    assert worker_device(expected) == ("cuda" if expected else "cpu")


def test_a_cuda_ray_task_on_a_cluster_without_gpus_is_refused_not_left_pending() -> None:
    with pytest.raises(ConfigError, match="retraining.device: cuda with executor ray, but the Ray"):
        ray_gpus("cuda", cluster_gpus=0)


def test_settings_accept_cuda_n_and_refuse_other_devices_by_field_path() -> None:
    from pydantic import ValidationError

    from adaptd.config import Settings

    settings = Settings(
        model={"device": "cuda:1", "dtype": "bfloat16"},
        retraining={"device": "cpu", "dtype": "bfloat16", "autocast": "bfloat16"},
    )
    assert settings.model.device == "cuda:1" and settings.model.dtype == "bfloat16"
    assert settings.retraining.autocast == "bfloat16"
    assert Settings().retraining.device is None, "training follows model.device unless set"
    with pytest.raises(ValidationError, match=r"model\.device\n.*pattern"):
        Settings(model={"device": "gpu"})
    with pytest.raises(ValidationError, match=r"retraining\.autocast"):
        Settings(retraining={"autocast": "int8"})
