"""python -m bench.retraining [--quick] [--threads N] [--skip-shift] [--tiny]

Prints a JSON report. The machine is shared (2 cores, several engineers): numbers are noisy."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from adaptd.datasets import demo
from adaptd.modeling.base import resolve_base
from adaptd.modeling.tiny import build_tiny_model
from bench.retraining import contention, shift, throughput


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.retraining")
    parser.add_argument("--quick", action="store_true", help="small data, one pass")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--skip-shift", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-contention", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="a tiny random BERT (plumbing only)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = str(build_tiny_model(work / "tiny")) if args.tiny else resolve_base(None)
        report: dict[str, object] = {"base": "tiny" if args.tiny else "all-MiniLM-L6-v2"}
        movies = list(demo.rotten_tomatoes())
        n = 160 if args.quick else 1000
        started = time.perf_counter()
        if not args.skip_throughput:
            report["throughput"] = throughput.run(
                base, movies[:n], work / "tp", threads=args.threads, max_length=args.max_length
            )
            print(json.dumps({"throughput": report["throughput"]}), flush=True)
        if not args.skip_contention:
            report["serving_during_retrain"] = contention.run(
                base,
                movies[:400],
                work / "contention",
                serving_threads=1,
                training_threads=1,
                seconds=5 if args.quick else 20,
                max_length=args.max_length,
            )
            print(json.dumps({"serving": report["serving_during_retrain"]}), flush=True)
        if not args.skip_shift:
            report["shift"] = shift.run(
                base,
                work / "shift",
                movies_train=400 if args.quick else 3000,
                tweets_train=343,
                test=200,
                epochs=3,
                threads=args.threads,
                max_length=args.max_length,
            )
        report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
