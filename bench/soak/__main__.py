"""Soak a real ``adaptd serve`` process: steady predictions with feedback, a promotion every
``--promote-every`` seconds cycling through three adapter versions (each promotion builds a
model: the host keeps only the active and the previous one), and the daemon's resident memory
sampled from ``/proc``. The target (issue 10): at most 5 % growth after warm-up over an hour.

    PYTHONPATH=daemon:. python -m bench.soak --minutes 10 [--tiny] [--warmup 2]

The peer is the daemon itself after warm-up: growth = (last RSS - RSS at the end of warm-up) /
RSS at the end of warm-up; the slope per hour is fitted over the samples after warm-up.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="soak length")
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes before the baseline")
    parser.add_argument("--promote-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--rate", type=float, default=10.0, help="predictions per second")
    parser.add_argument("--tiny", action="store_true", help="a tiny random BERT, not MiniLM")
    args = parser.parse_args()

    import torch

    from adaptd.adapters import registry
    from adaptd.modeling.base import inspect_base
    from adaptd.modeling.tiny import build_tiny_model
    from adaptd.storage.engine import make_engine
    from bench.faults.daemon import LABELS, serve
    from bench.serving import setup

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = build_tiny_model(root / "tiny") if args.tiny else Path(setup.minilm())
        adapters = [setup.make_adapter(str(base), root / f"adapter-{i}", seed=i) for i in range(3)]
        serving = {"registry_poll_s": 2.0}
        with serve(base, adapters[0], root / "soak", serving=serving) as daemon:
            engine = make_engine(f"sqlite:///{daemon.state_dir / 'adaptd.db'}")
            info = inspect_base(str(base), LABELS)
            versions = [
                registry.import_adapter(
                    engine,
                    daemon.state_dir / "adapters",
                    a,
                    base=info,
                    labels=LABELS,
                    now=datetime.now(UTC),
                ).version
                for a in adapters
            ]
            texts = setup.texts(2000)
            stop = threading.Event()
            counts = {"ok": 0, "failed": 0, "feedback_refused": 0}

            def traffic() -> None:
                rng = random.Random(0)
                with httpx.Client(base_url=daemon.url, timeout=30) as client:
                    next_at = time.monotonic()
                    while not stop.is_set():
                        next_at += 1.0 / args.rate
                        if (pause := next_at - time.monotonic()) > 0:
                            time.sleep(pause)
                        r = client.post("/v1/predict", json={"inputs": [rng.choice(texts)]})
                        if r.status_code != 200:
                            counts["failed"] += 1
                            continue
                        counts["ok"] += 1
                        if rng.random() < 0.3:
                            pid = r.json()["predictions"][0]["id"]
                            body = {"feedback": [{"id": pid, "label": rng.choice(LABELS)}]}
                            if client.post("/v1/feedback", json=body).status_code != 200:
                                counts["feedback_refused"] += 1

            thread = threading.Thread(target=traffic, daemon=True)
            thread.start()
            started = time.monotonic()
            end = started + args.minutes * 60
            samples: list[tuple[float, float]] = []
            promotions, next_promotion = 0, started + args.promote_every
            print(
                f"soak: {args.minutes:g} min, {args.rate:g} predictions/s, a promotion every "
                f"{args.promote_every:g} s over 3 versions ({'tiny' if args.tiny else 'MiniLM'})"
            )
            while time.monotonic() < end and daemon.proc.poll() is None:
                now = time.monotonic()
                if now >= next_promotion:
                    promotions += 1
                    registry.promote(
                        engine,
                        versions[promotions % 3],
                        datetime.now(UTC),
                        reason="soak",
                        source="bench",
                    )
                    next_promotion += args.promote_every
                samples.append(((now - started) / 60, rss_mb(daemon.proc.pid)))
                if len(samples) % 6 == 1:
                    print(
                        f"  {samples[-1][0]:6.1f} min  RSS {samples[-1][1]:7.1f} MB  "
                        f"promotions {promotions}  ok {counts['ok']}"
                    )
                time.sleep(10)
            stop.set()
            thread.join(30)
            engine.dispose()
        after = [(m, r) for m, r in samples if m >= args.warmup]
        if len(after) < 2:
            print("too short for a measurement after warm-up")
            return
        baseline, last, peak = after[0][1], after[-1][1], max(r for _, r in after)
        n = len(after)
        mx = sum(m for m, _ in after) / n
        my = sum(r for _, r in after) / n
        slope = sum((m - mx) * (r - my) for m, r in after) / sum((m - mx) ** 2 for m, _ in after)
        print(
            f"RSS after {args.warmup:g} min warm-up {baseline:.1f} MB, at the end {last:.1f} MB, "
            f"peak {peak:.1f} MB"
        )
        print(
            f"growth after warm-up: {100 * (last - baseline) / baseline:+.2f} % "
            f"(target <= 5 %), fitted slope {slope * 60:+.1f} MB/hour"
        )
        print(
            f"promotions {promotions}, predictions ok {counts['ok']}, failed {counts['failed']}, "
            f"feedback refused {counts['feedback_refused']}"
        )


if __name__ == "__main__":
    main()
