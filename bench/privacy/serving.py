"""Serving throughput with redaction on vs off: the in-process daemon of bench.serving (batcher,
MiniLM forward, log writer to SQLite, metrics) on corpus texts, the two guards in alternating
rounds, each keeping its best round (the machine is shared)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from adaptd.privacy.guard import TextGuard

KEY = b"bench-privacy-key-" * 2


def throughput(
    texts: list[str], *, threads: int, rounds: int, model: str = "minilm"
) -> dict[str, float]:
    """Best texts/s of each mode. ``model`` tiny (2 layers, hidden 32) makes the forward pass
    cheap, so the share redaction takes is the largest it can be: the worst case."""
    import torch

    from adaptd.modeling.tiny import build_tiny_model
    from bench.serving import setup
    from bench.serving.throughput import InProcessDaemon

    torch.set_num_threads(threads)
    best = {"full": 0.0, "redacted": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        base = setup.minilm() if model == "minilm" else str(build_tiny_model(Path(tmp) / "tiny"))
        adapter = setup.make_adapter(base, Path(tmp) / "a", seed=0)
        daemons = {
            mode: InProcessDaemon(
                base, adapter, log=True, threads=threads, guard=TextGuard(mode=mode, key=KEY)
            )
            for mode in ("full", "redacted")
        }
        try:
            for daemon in daemons.values():
                daemon.serve(texts[:64])  # warm-up: first forward, first write
            for _ in range(rounds):
                for mode, daemon in daemons.items():
                    best[mode] = max(best[mode], len(texts) / daemon.serve(texts))
        finally:
            for daemon in daemons.values():
                daemon.close()
    return best
