"""bench.gpu on a machine without a GPU: it refuses clearly; its peak table reads right."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bench.gpu.peaks import peak_tflops

ROOT = Path(__file__).resolve().parents[3]


def test_peaks_pick_the_most_specific_name_and_know_missing_dtypes() -> None:
    assert peak_tflops("NVIDIA H100 PCIe", "bfloat16") == 756.0
    assert peak_tflops("NVIDIA H100 80GB HBM3", "bfloat16") == 989.4
    assert peak_tflops("NVIDIA H200", "float32") == 66.9
    assert peak_tflops("NVIDIA A10G", "bfloat16") == 70.0
    assert peak_tflops("Tesla T4", "bfloat16") is None, "T4 has no bfloat16 tensor cores"
    assert peak_tflops("Some Future GPU", "bfloat16") is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a CPU-only box")
def test_without_a_gpu_it_refuses_with_exit_2_and_says_where_cpu_numbers_are() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "daemon"), str(ROOT)])}
    out = subprocess.run(
        [sys.executable, "-m", "bench.gpu", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2
    assert "torch sees no CUDA device" in out.stderr and "bench.serving" in out.stderr
    assert "Traceback" not in out.stderr
