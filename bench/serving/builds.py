"""What one serving build costs: the CPU a new adapter version takes beside the batcher.

    PYTHONPATH=daemon:. python -m bench.serving.builds [--base minilm|smollm2|PATH] [--rounds R]
        [--builds N] [--targets all-linear]

A build (``ModelHost.build``) runs beside the batcher on the cores it serves with, so its CPU is
what the requests overlapping it lose (bench/serving/README.md, the swap window). Two ways on the
same host and the same adapter, rounds alternating: **plain**, the daemon's path for the LoRA
adapters it trains (tensors read and attached directly, no warm-up), and **peft**, the path it
keeps for everything else and took for every adapter before (``PeftModel.from_pretrained`` on a
deep copy, unwrapped, a warm-up forward). Reported: CPU ms per build (process time of all
threads, the build thread's included), best and median round, and the ratio; then one build of
each way taken apart by phase.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from adaptd.serving.host import ModelHost


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serving.builds")
    parser.add_argument("--base", default="minilm", help="minilm, smollm2 or a model.base path")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--builds", type=int, default=20, help="builds per round and way")
    parser.add_argument(
        "--targets",
        default="",
        help="LoRA targets of the adapter, comma-separated (default: peft's for the "
        "architecture, as (c) promotes; all-linear is what the daemon trains)",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from adaptd.modeling.lora import LoraSpec, new_adapter, save_adapter
    from adaptd.serving import host as host_module
    from bench.serving.setup import LABELS, base_of

    base = base_of(args.base)
    with tempfile.TemporaryDirectory() as tmp:
        from adaptd.modeling.base import load_classifier

        torch.manual_seed(0)
        targets = tuple(args.targets.split(",")) if args.targets else None
        model = new_adapter(
            load_classifier(base, LABELS), LoraSpec(rank=8, alpha=16, target_modules=targets)
        )
        adapter = Path(tmp) / "adapter"
        save_adapter(model, adapter, LABELS, {})
        del model
        host = host_module.ModelHost(base=base, labels=LABELS, threads=1)

        def cpu_ms_per_build(plain: bool) -> float:
            host_module.PLAIN_BUILDS = plain
            started = time.process_time()
            for _ in range(args.builds):
                host.build("v", adapter)
            return (time.process_time() - started) / args.builds * 1000

        for plain in (True, False):  # first builds of each way are not counted
            cpu_ms_per_build(plain)
        rounds: dict[str, list[float]] = {"plain": [], "peft": []}
        for r in range(args.rounds):
            order = (True, False) if r % 2 == 0 else (False, True)
            for plain in order:
                rounds["plain" if plain else "peft"].append(cpu_ms_per_build(plain))
        host_module.PLAIN_BUILDS = True
        print(f"{base}, adapter targets {targets or 'peft default'}, 1 torch thread")  # noqa: T201
        for way, values in rounds.items():
            print(  # noqa: T201
                f"    {way}: CPU per build best {min(values):.1f} ms, "
                f"median {statistics.median(values):.1f} ms ({args.rounds} rounds of "
                f"{args.builds})"
            )
        best = min(rounds["peft"]) / min(rounds["plain"])
        median = statistics.median(rounds["peft"]) / statistics.median(rounds["plain"])
        print(f"    peft / plain: {best:.2f}x best, {median:.2f}x median")  # noqa: T201
        _phases(host, adapter)


def _phases(host: ModelHost, adapter: Path) -> None:
    """One build of each way, phase by phase (CPU ms, mean of 10)."""
    from adaptd.modeling.lora import load_adapter, read_plain_lora
    from adaptd.modeling.sharing import (
        attach_plain,
        owned_bytes,
        shared_copy,
        tree_copy,
        unwrap_for_serving,
    )

    base = host._base_model
    phases: dict[str, float] = {}

    @contextmanager
    def timed(name: str) -> Iterator[None]:
        started = time.process_time()
        yield
        phases[name] = phases.get(name, 0.0) + (time.process_time() - started) * 100

    for _ in range(10):
        with timed("check"):
            host.check(adapter)
        with timed("plain: read tensors"):
            plain = read_plain_lora(adapter, head=base.head_name)
        assert plain is not None, "the benchmark's adapter is plain LoRA"
        with timed("plain: tree_copy"):
            tree = tree_copy(base)
        with timed("plain: attach"):
            version = attach_plain(tree, plain, source=adapter)
        with timed("owned bytes"):
            owned_bytes(version, base)
        with timed("peft: deep copy"):
            copied = shared_copy(base)
        with timed("peft: from_pretrained"):
            peft_model = load_adapter(copied, adapter)
        with timed("peft: unwrap"):
            served = unwrap_for_serving(peft_model)
        with timed("peft: warm-up forward"):
            host._warm_up(served)
    shown = ", ".join(f"{name} {ms:.1f}" for name, ms in phases.items())
    print(f"    phases (CPU ms, mean of 10): {shown}")  # noqa: T201


if __name__ == "__main__":
    main()
