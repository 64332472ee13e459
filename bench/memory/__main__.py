"""Resident memory of serving with 1, 2 and 3 adapter versions loaded, shared vs merged.

    PYTHONPATH=daemon:. ADAPTD_DATA_DIR=... HF_HUB_OFFLINE=1 python -m bench.memory [--quick]

Each (model, mode) runs in a fresh process: load the ModelHost (base model), then build three
adapter versions one after another, keeping every one (as the host keeps serving, offered and
previous). After each step: the process's resident set (VmRSS, after gc and malloc_trim) and the
bytes of tensors each version owns. ``shared`` is the default (versions share the base's
weights); ``merged`` is ``model.merge_adapters: true`` (a full merged copy per version), i.e. what
every version cost before. Adapters are r=8 LoRA on every linear layer (the retrain default),
trained head in ``modules_to_save``. ``--quick`` skips SmolLM2.

The CPU cost of sharing is measured too: CPU time (not wall time: the box is shared) of one
forward at batch 32 on real snippets, shared vs merged, best of interleaved rounds.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from math import nan
from pathlib import Path
from typing import Any

from bench.serving.setup import LABELS, minilm, texts


def smollm2() -> str:
    from adaptd.datasets.archives import smollm2_gguf
    from adaptd.errors import DatasetError

    try:
        return str(smollm2_gguf())
    except DatasetError as e:
        raise SystemExit(f"bench.memory: {e} (run make data with the LLM archive)") from e


def rss_mb() -> float:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def make_adapter(base: str, out: Path, seed: int) -> Path:
    import torch

    from adaptd.modeling.base import load_classifier, load_tokenizer
    from adaptd.modeling.lora import LoraSpec, new_adapter, save_adapter

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(base)
    model = load_classifier(base, LABELS, tokenizer=tokenizer)
    model = new_adapter(model, LoraSpec(rank=8, alpha=16, target_modules=("all-linear",)))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    save_adapter(model, out, LABELS, {})
    return out


def measure(base: str, adapters: list[str], merge: bool) -> dict[str, Any]:
    """Runs in the child: RSS after the base and after each version."""
    import torch

    from adaptd.serving.host import ModelHost

    torch.set_num_threads(1)
    before = rss_mb()
    host = ModelHost(base=base, labels=LABELS, merge_adapters=merge, max_length=128, threads=1)
    steps = [{"versions": 0, "rss_mb": round(rss_mb(), 1)}]
    built = []
    for i, adapter in enumerate(adapters):
        built.append(host.build(f"v{i}", Path(adapter)))
        steps.append(
            {
                "versions": i + 1,
                "rss_mb": round(rss_mb(), 1),
                "owned_mb": round(built[-1].owned_bytes / 2**20, 2),
            }
        )
    base_mb = sum(p.numel() * p.element_size() for p in host._base_model.parameters()) / 2**20
    return {
        "python_torch_mb": round(before, 1),
        "base_tensors_mb": round(base_mb, 1),
        "steps": steps,
    }


def forward_cpu_seconds(base: str, adapter: str, rounds: int) -> dict[str, float]:
    """Best CPU time of one B=32 forward, shared vs merged, interleaved rounds."""
    import torch

    from adaptd.modeling.base import load_tokenizer
    from adaptd.serving.host import ModelHost

    torch.set_num_threads(1)
    shared = ModelHost(base=base, labels=LABELS, max_length=128).build("s", Path(adapter))
    merged = ModelHost(base=base, labels=LABELS, max_length=128, merge_adapters=True).build(
        "m", Path(adapter)
    )
    batch = load_tokenizer(base)(
        texts(32), padding=True, truncation=True, max_length=128, return_tensors="pt"
    )
    best = {"shared": float("inf"), "merged": float("inf")}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, built in (("shared", shared), ("merged", merged)):
                start = time.thread_time()
                built.model(**batch, output_hidden_states=True)
                best[name] = min(best[name], time.thread_time() - start)
    return {k: round(v, 4) for k, v in best.items()}


def _child(args: list[str], options: tuple[str, ...] = ()) -> Any:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    out = subprocess.run(
        [sys.executable, "-m", "bench.memory", *options, "--child", *args],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory")
    parser.add_argument("--quick", action="store_true", help="MiniLM only")
    parser.add_argument("--rounds", type=int, default=5, help="forward timing rounds")
    parser.add_argument("--model", choices=["MiniLM-L6", "SmolLM2-135M"], help="only this one")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, base, *rest = args.child
        if kind == "adapters":
            result: Any = [str(make_adapter(base, Path(p), seed=i)) for i, p in enumerate(rest)]
        elif kind == "timing":
            result = forward_cpu_seconds(base, rest[0], args.rounds)
        else:
            result = measure(base, rest, merge=kind == "merged")
        print(json.dumps(result))
        return

    models = {}
    if args.model in (None, "MiniLM-L6"):
        models["MiniLM-L6"] = minilm()
    if not args.quick and args.model in (None, "SmolLM2-135M"):
        models["SmolLM2-135M"] = smollm2()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for name, base in models.items():
            paths = [str(Path(tmp) / f"{name}-{i}") for i in range(3)]
            adapters = _child(["adapters", base, *paths])
            results[name] = {mode: _child([mode, base, *adapters]) for mode in ("shared", "merged")}
            rounds = ("--rounds", str(args.rounds))
            results[name]["forward_cpu_s"] = _child(["timing", base, adapters[0]], rounds)
            _report(name, results[name])
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _report(name: str, result: dict[str, Any]) -> None:
    """RSS, and the model's part of it (RSS minus the interpreter with torch and transformers
    imported, before the base was loaded), each as a multiple of the one-version figure."""
    print(
        f"\n{name}: base tensors {result['shared']['base_tensors_mb']} MB; interpreter with "
        f"torch {result['shared']['python_torch_mb']} MB"
    )
    print("mode     versions   RSS MB  x one   model MB  x one   owned by the version MB")
    for mode in ("shared", "merged"):
        steps = result[mode]["steps"]
        floor = result[mode]["python_torch_mb"]
        one, one_model = steps[1]["rss_mb"], steps[1]["rss_mb"] - floor
        for step in steps:
            rss, model = step["rss_mb"], step["rss_mb"] - floor
            x, x_model = (rss / one, model / one_model) if step["versions"] else (nan, nan)
            owned = step.get("owned_mb", "")
            print(
                f"{mode:8} {step['versions']:>8} {rss:>8.1f} {x:>6.2f} {model:>9.1f} "
                f"{x_model:>6.2f}   {owned}"
            )
    t = result["forward_cpu_s"]
    print(
        f"forward B=32, 1 thread, CPU s: shared {t['shared']}, merged {t['merged']} "
        f"({t['shared'] / t['merged']:.2f}x)"
    )


if __name__ == "__main__":
    main()
