"""Dense peak matmul rates of common GPUs, for MFU. Vendor datasheet figures without structured
sparsity (the "with sparsity" figures are twice these); tensor-core rates for the half types,
plain FP32 (not TF32) for float32, because torch runs float32 matmuls in full FP32 unless
``torch.backends.cuda.matmul.allow_tf32`` is set. Boost clocks, so a real run reaches less."""

from __future__ import annotations

#: TFLOP/s by (name fragment as torch.cuda.get_device_name reports it, dtype)
PEAK_TFLOPS: dict[str, dict[str, float]] = {
    "B200": {"float32": 80.0, "bfloat16": 2250.0, "float16": 2250.0},
    "H200": {"float32": 66.9, "bfloat16": 989.4, "float16": 989.4},
    "H100 PCIe": {"float32": 51.2, "bfloat16": 756.0, "float16": 756.0},
    "H100": {"float32": 66.9, "bfloat16": 989.4, "float16": 989.4},  # SXM
    "GH200": {"float32": 66.9, "bfloat16": 989.4, "float16": 989.4},
    "A100": {"float32": 19.5, "bfloat16": 312.0, "float16": 312.0},
    "A10G": {"float32": 31.2, "bfloat16": 70.0, "float16": 70.0},
    "A10": {"float32": 31.2, "bfloat16": 125.0, "float16": 125.0},
    "L40S": {"float32": 91.6, "bfloat16": 362.0, "float16": 362.0},
    "L4": {"float32": 30.3, "bfloat16": 121.0, "float16": 121.0},
    "RTX 6000 Ada": {"float32": 91.1, "bfloat16": 364.0, "float16": 364.0},
    "RTX A6000": {"float32": 38.7, "bfloat16": 154.8, "float16": 154.8},
    "RTX 4090": {"float32": 82.6, "bfloat16": 165.2, "float16": 165.2},
    "RTX 3090": {"float32": 35.6, "bfloat16": 71.0, "float16": 71.0},
    "V100": {"float32": 15.7, "float16": 125.0},
    "T4": {"float32": 8.1, "float16": 65.0},
}


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """The table's peak for ``device_name`` (longest matching fragment wins, so "H100 PCIe" is
    not read as "H100"), or None when the GPU or the dtype is not in the table."""
    matches = [k for k in PEAK_TFLOPS if k.lower() in device_name.lower()]
    if not matches:
        return None
    return PEAK_TFLOPS[max(matches, key=len)].get(dtype)
