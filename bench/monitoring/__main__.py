"""``python -m bench.monitoring [--quick]``: adaptd's monitors against Evidently and River.

Prints one JSON document with every number and the ratios. The machine is shared (2 cores);
read timings as +-15%.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.monitoring import domain, speed, streams
from bench.monitoring.data import scenario


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.monitoring", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument(
        "--only", choices=["speed", "streams", "domain"], help="run one part of the benchmark"
    )
    args = parser.parse_args()
    quick = args.quick
    t0 = time.perf_counter()
    s = scenario()
    report: dict[str, object] = {"quick": quick}
    if args.only in (None, "speed"):
        rows = 10_000 if quick else 100_000
        report["window_check"] = speed.run(
            s, rows, evidently_embedding_rows=2_000 if quick else rows
        )
    if args.only in (None, "streams"):
        report["error_streams"] = {
            f"0.10->{p2}": streams.delays(
                p2, seeds=5 if quick else 20, stable=5_000 if quick else 50_000, after=5_000
            )
            for p2 in (0.15, 0.20)
        }
        report["false_alarms_per_million"] = streams.false_alarms_per_million(
            samples=200_000 if quick else 1_000_000
        )
    if args.only in (None, "domain"):
        report["domain_shift"] = domain.shift(s, window=2000)
        report["stable_30_days"] = domain.stable_days(s, days=5 if quick else 30, window=2000)
    report["total_s"] = time.perf_counter() - t0
    print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
