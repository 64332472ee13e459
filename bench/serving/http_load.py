"""Concurrent HTTP clients, run in their own process so they do not share the daemon's GIL.

    python -m bench.serving.http_load URL N_TEXTS CONCURRENCY PER_REQUEST
prints one JSON line: seconds, requests ok/failed, latencies p50/p99 (ms).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench.serving.setup import pct, texts


async def _run(url: str, items: list[str], concurrency: int, per_request: int) -> dict[str, float]:
    import httpx

    chunks = [items[i : i + per_request] for i in range(0, len(items), per_request)]
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for chunk in chunks:
        queue.put_nowait(chunk)
    latencies: list[float] = []
    failed = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while not queue.empty():
            chunk = queue.get_nowait()
            start = time.perf_counter()
            response = await client.post("/v1/predict", json={"inputs": chunk})
            if response.status_code == 200:
                latencies.append(time.perf_counter() - start)
            else:
                failed += 1

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await client.post("/v1/predict", json={"inputs": ["warm-up"]})
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "ok": len(latencies),
        "failed": failed,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
    }


def main() -> None:
    url, n, concurrency, per_request = sys.argv[1], *map(int, sys.argv[2:5])
    print(json.dumps(asyncio.run(_run(url, texts(n), concurrency, per_request))))


if __name__ == "__main__":
    main()
