"""Serving and training throughput on a GPU, with MFU against the device's datasheet peak.

    PYTHONPATH=daemon:. ADAPTD_DATA_DIR=... HF_HUB_OFFLINE=1 python -m bench.gpu \
        [--device cuda] [--dtype bfloat16] [--quick] [--json out.json]

Refuses (exit 2) when torch sees no CUDA device: CPU numbers come from ``python -m bench.serving``
and ``python -m bench.retraining``. For MiniLM and, when its file is present, SmolLM2-135M:

- serving: the daemon's path in-process (ModelHost with ``model.device``/``model.dtype``, the
  batcher at max_batch 64, every text a request of 4) vs the peer, a plain ``transformers``
  ``AutoModel`` forward at the same batch size, dtype and device; seq/s and MFU;
- training: the real fine-tune (:func:`adaptd.retraining.trainer.train`, fresh LoRA r=8 on every
  linear layer, ``retraining.autocast`` as given) on real movie-review snippets; samples/s and MFU
  counting 4 x params per token (forward 2, backward to the activations 2; the frozen base has
  no weight gradients, LoRA's are negligible).

MFU is against :mod:`bench.gpu.peaks` (dense, no sparsity) and against the best matmul rate
measured here in the same dtype, which is what the device actually sustains.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.gpu.peaks import peak_tflops
from bench.serving.setup import LABELS, flops_per_text, minilm, texts

MAX_LENGTH = 128


def require_gpu(device: str) -> str:
    """The device's name, or exit 2 saying why nothing was measured."""
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        sys.stderr.write(
            "bench.gpu: torch sees no CUDA device, so there is nothing to measure here; "
            "CPU numbers come from python -m bench.serving and python -m bench.retraining\n"
        )
        raise SystemExit(2)
    return str(torch.cuda.get_device_name(torch.device(device)))


def matmul_tflops(device: str, dtype: str, seconds: float = 1.0) -> float:
    import torch

    from adaptd.modeling.device import torch_dtype

    a = torch.randn(8192, 8192, device=device, dtype=torch_dtype(dtype))
    b = torch.randn(8192, 8192, device=device, dtype=torch_dtype(dtype))
    torch.mm(a, b)
    torch.cuda.synchronize(device)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        n += 1
        torch.cuda.synchronize(device)
    return 2 * 8192**3 * n / (time.perf_counter() - start) / 1e12


def serving(base: str, adapter: Path, items: list[str], device: str, dtype: str) -> dict[str, Any]:
    import torch
    from transformers import AutoModel

    from adaptd.metrics import new_metrics
    from adaptd.modeling.base import load_tokenizer
    from adaptd.modeling.device import torch_dtype
    from adaptd.serving.batcher import Batcher
    from adaptd.serving.host import ModelHost

    host = ModelHost(base=base, labels=LABELS, device=device, dtype=dtype, max_length=MAX_LENGTH)
    host.offer(host.build("bench", adapter))
    batcher = Batcher(host, new_metrics(), max_batch=64, max_wait_ms=2.0, queue_size=1 << 20)
    batcher.start()
    batcher.wake()

    def daemon_run() -> float:
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        futures = [batcher.submit(items[i : i + 4]) for i in range(0, len(items), 4)]
        for f in futures:
            f.result()
        return time.perf_counter() - start

    tokenizer = load_tokenizer(base)
    source = Path(base)
    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype)}
    if base.endswith(".gguf"):
        source, kwargs["gguf_file"] = source.parent, source.name
    peer = AutoModel.from_pretrained(str(source), **kwargs).to(device).eval()

    def peer_run() -> float:
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(items), 64):
                enc = tokenizer(
                    items[i : i + 64],
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                ).to(device)
                peer(**enc).last_hidden_state[:, 0].float().cpu()
        torch.cuda.synchronize(device)
        return time.perf_counter() - start

    daemon_run(), peer_run()  # warm-up: kernels picked, allocator grown
    daemon_s = min(daemon_run() for _ in range(3))
    peer_s = min(peer_run() for _ in range(3))
    batcher.stop()
    flops = flops_per_text(peer, tokenizer, items, MAX_LENGTH)
    return {
        "texts": len(items),
        "daemon_seq_s": len(items) / daemon_s,
        "peer_seq_s": len(items) / peer_s,
        "flops_per_text": flops,
    }


def training(base: str, rows: int, device: str, dtype: str, autocast: str) -> dict[str, Any]:
    from adaptd.datasets.demo import rotten_tomatoes
    from adaptd.retraining.spec import TrainSpec
    from adaptd.retraining.trainer import train, write_train_file

    examples = rotten_tomatoes()[:rows]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_train_file(work / "train.jsonl", [(e.text, e.label or "", 1.0) for e in examples])
        spec = TrainSpec(
            base=base,
            contrastive="off",  # the fine-tune alone (stage: bench.adaptation.contrastive)
            labels=LABELS,
            train_file=str(work / "train.jsonl"),
            out_dir=str(work / "adapter"),
            progress_file=str(work / "progress.jsonl"),
            device=device,
            dtype=dtype,  # type: ignore[arg-type]
            autocast=autocast,  # type: ignore[arg-type]
            mode="finetune",
            target_modules=("all-linear",),
            epochs=1,
            min_steps=0,
            batch_size=32,
            max_length=MAX_LENGTH,
            dev_fraction=0.0,
        )
        result = train(spec, lambda p: None)
    return {"rows": rows, "samples_per_s": result.samples_per_s, "device": result.device}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--autocast", default=None, help="training autocast (default: --dtype)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    name = require_gpu(args.device)
    autocast = args.autocast or ("none" if args.dtype == "float32" else args.dtype)

    import torch

    from bench.memory.__main__ import make_adapter, smollm2

    measured = matmul_tflops(args.device, args.dtype)
    peak = peak_tflops(name, args.dtype)
    print(f"{name}, {args.dtype}: measured matmul {measured:.0f} TFLOP/s, datasheet {peak} TFLOP/s")
    models = {"MiniLM-L6": minilm()}
    try:
        models["SmolLM2-135M"] = smollm2()
    except SystemExit as e:
        print(f"SmolLM2 skipped: {e}")
    n_texts = 2048 if args.quick else 16384
    n_rows = 1024 if args.quick else 4096
    items = texts(n_texts)
    results: dict[str, Any] = {"device": name, "dtype": args.dtype, "peak_tflops": peak}
    results["measured_matmul_tflops"] = measured
    with tempfile.TemporaryDirectory() as tmp:
        for model, base in models.items():
            adapter = make_adapter(base, Path(tmp) / model, seed=0)
            serve = serving(base, adapter, items, args.device, args.dtype)
            train_ = training(base, n_rows, args.device, args.dtype, autocast)
            per_text = serve["flops_per_text"]
            results[model] = {"serving": serve, "training": train_}
            print(f"\n{model}: {per_text / 1e9:.2f} GFLOP per text (forward)")
            for label, rate, mult in (
                ("serving, daemon", serve["daemon_seq_s"], 1),
                ("serving, peer transformers", serve["peer_seq_s"], 1),
                (f"training, autocast {autocast}", train_["samples_per_s"], 2),
            ):
                tflops = rate * per_text * mult / 1e12
                vs_peak = f"{tflops / peak:.1%}" if peak else "n/a (GPU not in the table)"
                print(
                    f"  {label:32} {rate:9.1f} /s  {tflops:6.1f} TFLOP/s  MFU {vs_peak} "
                    f"(of measured matmul {tflops / measured:.1%})"
                )
            torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
