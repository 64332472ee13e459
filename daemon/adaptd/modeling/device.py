"""Where a model runs and in which precision: ``model.device``/``model.dtype`` for serving and
``retraining.device``/``dtype``/``autocast`` for the fine-tune.

The decisions are pure functions of the setting and of what the machine has (passed in), so every
branch, the CUDA ones included, is tested on a CPU-only box; :func:`resolve_device` is the one
place that asks torch.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Literal

from adaptd.errors import ConfigError

#: ``auto`` picks CUDA when torch sees a device; ``cuda`` is the current CUDA device
DEVICE_PATTERN = r"^(auto|cpu|cuda(:[0-9]+)?)$"
DtypeSetting = Literal["float32", "bfloat16", "float16"]
AutocastSetting = Literal["none", "bfloat16", "float16"]

_CUDA = re.compile(r"^cuda(?::([0-9]+))?$")


def pick_device(setting: str, *, cuda_available: bool, cuda_count: int, key: str) -> str:
    """The torch device string for ``setting`` on a machine with ``cuda_count`` CUDA devices.

    ``key`` is the config key named in the error (``model.device``, ``retraining.device``)."""
    if setting == "auto":
        return "cuda" if cuda_available and cuda_count > 0 else "cpu"
    if setting == "cpu":
        return "cpu"
    match = _CUDA.match(setting)
    if match is None:
        raise ConfigError(f"{key}: {setting!r} is not auto, cpu, cuda or cuda:N")
    if not cuda_available or cuda_count == 0:
        raise ConfigError(f"{key}: {setting} requested but torch sees no CUDA device")
    index = match.group(1)
    if index is not None and int(index) >= cuda_count:
        raise ConfigError(
            f"{key}: {setting} requested but torch sees {cuda_count} CUDA device(s) "
            f"(cuda:0..cuda:{cuda_count - 1})"
        )
    return setting


def resolve_device(setting: str, *, key: str = "model.device") -> str:
    """:func:`pick_device` on this machine."""
    import torch

    available = bool(torch.cuda.is_available())
    count = int(torch.cuda.device_count()) if available else 0
    return pick_device(setting, cuda_available=available, cuda_count=count, key=key)


def is_cuda(device: str) -> bool:
    return device.startswith("cuda")


def check_dtype(dtype: str, device: str, *, key: str = "model.dtype") -> None:
    """float16 only on CUDA: CPU kernels for it are slow or missing, while bfloat16 has fast
    CPU kernels (AVX-512 BF16/AMX) and float32's exponent range, so it is the CPU half type."""
    if dtype not in {"float32", "bfloat16", "float16"}:
        raise ConfigError(f"{key}: {dtype!r} is not float32, bfloat16 or float16")
    if dtype == "float16" and not is_cuda(device):
        raise ConfigError(f"{key}: float16 needs a CUDA device, not {device}; use bfloat16")


def torch_dtype(name: str) -> Any:
    import torch

    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    return dtype[name]


def check_autocast(autocast: str, device: str, *, key: str = "retraining.autocast") -> None:
    """Mixed precision: matmuls in the half type, weights and the optimizer in their own."""
    if autocast == "none":
        return
    check_dtype(autocast, device, key=key)


def autocast_context(autocast: str, device: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``autocast`` on ``device``, or a context that does nothing."""
    if autocast == "none":
        return contextlib.nullcontext()
    import torch

    device_type = "cuda" if is_cuda(device) else "cpu"
    return torch.autocast(device_type=device_type, dtype=torch_dtype(autocast))


def needs_grad_scaler(autocast: str) -> bool:
    """float16's narrow exponent underflows small gradients: scale the loss (bfloat16 has
    float32's range and needs none)."""
    return autocast == "float16"


def ray_gpus(setting: str, *, cluster_gpus: float) -> int:
    """GPUs a Ray training task asks for: one for a cuda setting (Ray then sets
    CUDA_VISIBLE_DEVICES, so the task sees it as ``cuda``), one for ``auto`` when the cluster
    has any, none for cpu. A cuda setting on a cluster without GPUs is refused here rather than
    left pending forever."""
    if setting == "cpu":
        return 0
    if setting == "auto":
        return 1 if cluster_gpus >= 1 else 0
    if _CUDA.match(setting) is None:
        raise ConfigError(f"retraining.device: {setting!r} is not auto, cpu, cuda or cuda:N")
    if cluster_gpus < 1:
        raise ConfigError(
            f"retraining.device: {setting} with executor ray, but the Ray cluster has no GPU"
        )
    return 1


def worker_device(gpus: int) -> str:
    """The device a Ray task trains on given the GPUs it was granted."""
    return "cuda" if gpus else "cpu"
