"""Peak resident memory of one side of (a), alone in a fresh process (the main benchmark holds
both sides at once, so its own peak says nothing about either).

    python -m bench.serving.rss peer|daemon BASE ADAPTER N_TEXTS THREADS BATCH
prints one JSON line: side, peak_rss_mb (VmHWM after loading and serving N_TEXTS texts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    side, base, adapter, n, threads, batch = sys.argv[1:7]
    import torch

    torch.set_num_threads(int(threads))
    from bench.serving import setup, throughput

    items = setup.texts(int(n))
    if side == "peer":
        throughput.PlainPeer(base, batch=int(batch)).run(items)
    elif side == "daemon":
        daemon = throughput.InProcessDaemon(
            base, Path(adapter), log=True, threads=int(threads), max_batch=int(batch)
        )
        daemon.serve(items)
        daemon.close()
    else:
        sys.exit(f"side must be peer or daemon, not {side!r}")
    print(json.dumps({"side": side, "peak_rss_mb": throughput.peak_rss_mb()}))


if __name__ == "__main__":
    main()
