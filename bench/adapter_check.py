"""How much a registry compatibility check costs, against the peer way of finding out: loading
the base model and attaching the adapter with peft (``PeftModel.from_pretrained``).

    PYTHONPATH=daemon python bench/adapter_check.py [--quick]

Uses the shipped MiniLM and a LoRA adapter (r=8, query/value, head 2x384) saved in a temp dir.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def mean_ms(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return 1000 * (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    n = 3 if args.quick else 20

    import torch
    from peft import PeftModel

    from adaptd.adapters.layout import check_compatible, content_hash
    from adaptd.modeling.base import (
        base_module_shapes,
        inspect_base,
        load_classifier,
        resolve_base,
    )
    from adaptd.modeling.lora import LoraSpec, new_adapter, save_adapter

    torch.set_num_threads(1)
    base = resolve_base(None)
    labels = ["negative", "positive"]
    with tempfile.TemporaryDirectory() as tmp:
        adapter = Path(tmp) / "adapter"
        save_adapter(new_adapter(load_classifier(base, labels), LoraSpec()), adapter, labels, {})
        info = inspect_base(base, labels)
        shapes = base_module_shapes(base, labels)

        hash_ms = mean_ms(lambda: content_hash(adapter), n)
        check_ms = mean_ms(
            lambda: check_compatible(adapter, info, labels, base_module_names=shapes), n
        )
        shapes_ms = mean_ms(lambda: base_module_shapes(base, labels), max(1, n // 5))
        peer_ms = mean_ms(
            lambda: PeftModel.from_pretrained(load_classifier(base, labels), str(adapter)),
            max(1, n // 5),
        )
    print(f"content_hash                      {hash_ms:9.2f} ms")
    print(f"check_compatible (with shapes)    {check_ms:9.2f} ms")
    print(f"base_module_shapes (meta device)  {shapes_ms:9.2f} ms")
    print(f"peer: load base + PeftModel       {peer_ms:9.2f} ms")
    print(f"ratio peer / (hash + check)       {peer_ms / (hash_ms + check_ms):9.1f}x")


if __name__ == "__main__":
    main()
