"""Fault benchmarks on a real ``adaptd serve`` process.

    PYTHONPATH=daemon:. python -m bench.faults [--quick] [--tiny]

kill -9 under steady traffic, at two flush intervals: predictions answered 200 that never reach
the store, next to the bound ``rate x log_flush_ms`` (the traffic of one flush interval). Before
the log writer honoured ``log_flush_ms`` (issue 10), 100 predictions answered over 3 s were all
lost; the shipped MiniLM is used unless ``--tiny``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 s of traffic per run")
    parser.add_argument("--tiny", action="store_true", help="a tiny random BERT, not MiniLM")
    parser.add_argument("--rate", type=float, default=50.0, help="predictions per second")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 10.0

    import torch

    from bench.faults import kill9

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base, adapter = _model(root, tiny=args.tiny)
        print(
            f"kill -9 after {seconds:g} s at {args.rate:g} predictions/s "
            f"({'tiny BERT' if args.tiny else 'MiniLM'}, SQLite, 1 torch thread)"
        )
        header = (
            f"{'log_flush_ms':>12} {'rate/s':>7} {'answered':>8} {'stored':>7} {'lost':>5} "
            f"{'bound':>6} {'oldest lost (s)':>15}"
        )
        print(header)
        for flush_ms in (200.0, 1000.0):
            r = kill9.run(
                base,
                adapter,
                root / f"run-{flush_ms:g}",
                flush_ms=flush_ms,
                rate=args.rate,
                seconds=seconds,
            )
            oldest = f"{r.oldest_lost_age_s:.3f}" if r.oldest_lost_age_s is not None else "-"
            print(
                f"{r.flush_ms:>12g} {r.rate_per_s:>7.1f} {r.answered:>8} {r.stored:>7} "
                f"{r.lost:>5} {r.answered_in_last_flush:>6} {oldest:>15}"
            )
        print("bound: predictions answered within one flush interval before the kill")


def _model(root: Path, *, tiny: bool) -> tuple[Path, Path]:
    from adaptd.modeling.tiny import build_tiny_model
    from bench.serving import setup

    base = build_tiny_model(root / "tiny") if tiny else Path(setup.minilm())
    return base, setup.make_adapter(str(base), root / "adapter", seed=0)


if __name__ == "__main__":
    main()
