"""``python -m bench.adaptation.threads [--rows N] [--threads 1,2] [--rate R] [--lend no,yes]``:
how many torch threads should the training child get while the daemon serves beside it, and
should serving give the child's cores up meanwhile (``ModelHost.lend_cores``, which the daemon's
retrain job does)?

The daemon (the shipped MiniLM, a first adapter fitted as a probe in seconds) serves real movie
snippets over its HTTP API at ``--rate`` predictions per second, as ``bench.adaptation`` does,
while the daemon's own executor (a niced child process, as a retrain runs) fine-tunes one epoch
on ``--rows`` snippets with each thread count in turn. Reported per thread count: training
samples/s, and the serving latencies (p50/p99), requests served against those asked, and
failed requests during that training; and the same with nothing training, as the reference.
``--lend no,yes`` runs each thread count twice: serving on all its threads (the baseline), then
on as many fewer as the child takes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from adaptd.datasets import demo
from adaptd.demo.scenario import scenario_settings, train_first_adapter
from adaptd.demo.traffic import post_json
from adaptd.modeling.base import resolve_base
from adaptd.retraining.executors import LocalExecutor
from adaptd.retraining.spec import TrainSpec
from adaptd.retraining.trainer import write_train_file
from adaptd.service import Service

LABELS = ("negative", "positive")


class Load:
    """Predict requests of 8 snippets at a steady rate from a thread; records latencies."""

    def __init__(self, url: str, texts: list[str], rate: float) -> None:
        self.url, self.texts, self.rate = url, texts, rate
        self.latencies: list[float] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        pause = 8 / self.rate
        next_at = time.perf_counter()
        while not self._stop.is_set():
            batch = [self.texts[(i + k) % len(self.texts)] for k in range(8)]
            i += 8
            started = time.perf_counter()
            try:
                status, _, _ = post_json(self.url + "/v1/predict", {"inputs": batch}, timeout=30)
                if status != 200:
                    self.failed += 1
            except OSError:
                self.failed += 1
            self.latencies.append(time.perf_counter() - started)
            next_at += pause
            time.sleep(max(0.0, next_at - time.perf_counter()))

    def __enter__(self) -> Load:
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.stopped = time.perf_counter()
        self._thread.join()

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)

        def q(p: float) -> float:
            return round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)

        return {
            "requests": len(ordered),
            "asked": round(self.rate / 8 * (self.stopped - self.started)),
            "failed": self.failed,
            "p50_ms": q(0.5),
            "p99_ms": q(0.99),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adaptation.threads", description=__doc__)
    parser.add_argument("--rows", type=int, default=400, help="training rows (one epoch)")
    parser.add_argument("--threads", default="1,2", help="thread counts to compare")
    parser.add_argument("--rate", type=float, default=10.0, help="predictions per second")
    parser.add_argument("--idle-s", type=float, default=30.0, help="reference serving window")
    parser.add_argument(
        "--lend", default="no,yes", help="serving gives up the child's cores: no, yes or both"
    )
    args = parser.parse_args(argv)
    movies = list(demo.rotten_tomatoes())
    tweets = list(demo.tweets())
    report: dict[str, Any] = {"rows": args.rows, "rate": args.rate}
    with tempfile.TemporaryDirectory(prefix="adaptd-threads-") as tmp:
        work = Path(tmp)
        settings = scenario_settings(
            work / "daemon",
            port=0,
            policies=[],
            check_interval_s=3600.0,
            overrides={"retraining": {"mode": "features"}},
        )
        (work / "daemon" / "adapters").mkdir(parents=True)
        train_first_adapter(settings, tweets[:300])
        service = Service(settings=settings)
        service.startup()
        try:
            url = f"http://127.0.0.1:{service.http_port}"
            texts = [e.text for e in movies[-1000:]]
            with Load(url, texts, args.rate) as load:
                time.sleep(args.idle_s)
            report["serving_idle"] = load.summary()
            print(json.dumps({"serving_idle": report["serving_idle"]}), flush=True)
            rows = [(e.text, e.label or "", 1.0) for e in movies[: args.rows]]
            write_train_file(work / "train.jsonl", rows)
            runs = [
                (int(t), lend == "yes")
                for t in args.threads.split(",")
                for lend in args.lend.split(",")
            ]
            assert service.host is not None
            for threads, lend in runs:
                spec = TrainSpec(
                    base=resolve_base(None),
                    contrastive="off",  # the fine-tune alone (stage: bench.adaptation.contrastive)
                    labels=LABELS,
                    train_file=str(work / "train.jsonl"),
                    out_dir=str(work / f"adapter-{threads}-{lend}"),
                    progress_file=str(work / f"progress-{threads}-{lend}.jsonl"),
                    pooling="mean",
                    mode="finetune",
                    target_modules=("all-linear",),
                    epochs=1,
                    min_steps=0,
                    max_length=settings.model.max_length,
                    threads=threads,
                )
                lent = service.host.lend_cores(threads) if lend else contextlib.nullcontext()
                with Load(url, texts, args.rate) as load, lent:
                    started = time.perf_counter()
                    result = LocalExecutor(nice=settings.retraining.nice).run(
                        spec, timeout_s=1800, on_progress=lambda p: None, cancel=threading.Event()
                    )
                    wall = time.perf_counter() - started
                row = {
                    "threads": threads,
                    "serving_lends_cores": lend,
                    "train_samples_per_s": result.samples_per_s,
                    "train_s": result.train_seconds,
                    "child_wall_s": round(wall, 1),
                    "serving": load.summary(),
                }
                report.setdefault("training", []).append(row)
                print(json.dumps(row), flush=True)
        finally:
            service.handle_term()
            service.shutdown()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
