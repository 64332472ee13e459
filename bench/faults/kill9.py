"""``kill -9`` under steady traffic: how many predictions answered 200 never reach the store.

A real ``adaptd serve`` process is sent predictions at a fixed rate; right after an answer it is
killed with SIGKILL, and the store is compared with the ids that were answered. The prediction
log writes a row at the latest ``log_flush_ms`` after it was answered, so only the traffic of
about one flush interval before the kill can be lost: the peer number printed next to the
measurement is that bound, the predictions answered within one flush interval before the kill.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.faults.daemon import serve, stored_ids


@dataclass(frozen=True, slots=True, kw_only=True)
class Kill9Result:
    flush_ms: float
    #: requests per second actually reached
    rate_per_s: float
    answered: int
    stored: int
    #: answered 200, not in the store after the kill
    lost: int
    #: the bound: predictions answered within one flush interval before the kill
    answered_in_last_flush: int
    #: how long before the kill the oldest lost prediction was answered (None: none lost)
    oldest_lost_age_s: float | None


def run(
    base: Path,
    adapter: Path,
    workdir: Path,
    *,
    flush_ms: float = 200.0,
    rate: float = 50.0,
    seconds: float = 3.0,
) -> Kill9Result:
    """Serve ``rate`` predictions per second for ``seconds``, then SIGKILL the daemon."""
    answered: list[tuple[float, str]] = []
    with serve(base, adapter, workdir, serving={"log_flush_ms": flush_ms}) as daemon:
        with httpx.Client(base_url=daemon.url, timeout=30) as client:
            started = time.monotonic()
            next_at = started
            n = 0
            while time.monotonic() - started < seconds:
                next_at += 1.0 / rate
                if (pause := next_at - time.monotonic()) > 0:
                    time.sleep(pause)
                body = {"inputs": [f"a steady stream of opinions, number {n}"]}
                response = client.post("/v1/predict", json=body)
                if response.status_code == 200:
                    answered.append((time.monotonic(), response.json()["predictions"][0]["id"]))
                n += 1
            elapsed = time.monotonic() - started
            daemon.proc.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            daemon.proc.wait()
        stored = stored_ids(daemon.state_dir)
    lost_ages = [killed_at - t for t, pid in answered if pid not in stored]
    flush_s = flush_ms / 1000.0
    return Kill9Result(
        flush_ms=flush_ms,
        rate_per_s=len(answered) / elapsed,
        answered=len(answered),
        stored=len(stored & {pid for _, pid in answered}),
        lost=len(lost_ages),
        answered_in_last_flush=sum(1 for t, _ in answered if killed_at - t <= flush_s),
        oldest_lost_age_s=max(lost_ages) if lost_ages else None,
    )
