"""Serving throughput with redaction on vs off: the in-process daemon of bench.serving (batcher,
MiniLM forward, log writer to SQLite, metrics) on corpus texts, the two guards in alternating
rounds, each keeping its best round (the machine is shared)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from adaptd.privacy.guard import TextGuard

KEY = b"bench-privacy-key-" * 2


def throughput(texts: list[str], *, threads: int, rounds: int) -> dict[str, float]:
    import torch

    from bench.serving import setup
    from bench.serving.throughput import InProcessDaemon

    torch.set_num_threads(threads)
    base = setup.minilm()
    best = {"full": 0.0, "redacted": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
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
