"""Feedback sent right after each answer, by concurrent clients, against a real daemon process:
how many calls are refused for a prediction that was answered 200. The peer is the target, 0;
issue 10 measured 102 refusals of 2,960 calls with 6 clients over 40 s before the fix."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.faults.daemon import serve


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackResult:
    clients: int
    seconds: float
    predictions: int
    feedback_calls: int
    #: feedback answered 4xx/5xx for a prediction answered 200
    refused: int
    codes: dict[str, int]


def run(
    base: Path, adapter: Path, workdir: Path, *, clients: int = 6, seconds: float = 40.0
) -> FeedbackResult:
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    with serve(base, adapter, workdir) as daemon:
        stop_at = time.monotonic() + seconds

        def client_loop(n: int) -> None:
            with httpx.Client(base_url=daemon.url, timeout=30) as client:
                i = 0
                while time.monotonic() < stop_at:
                    body = {"inputs": [f"client {n} says something, number {i}"]}
                    answer = client.post("/v1/predict", json=body)
                    i += 1
                    if answer.status_code != 200:
                        with lock:
                            outcomes[f"predict {answer.status_code}"] += 1
                        continue
                    pid = answer.json()["predictions"][0]["id"]
                    fb = {"feedback": [{"id": pid, "label": "positive"}]}
                    code = client.post("/v1/feedback", json=fb).status_code
                    with lock:
                        outcomes["predict 200"] += 1
                        outcomes[f"feedback {code}"] += 1

        threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    feedback = {k: v for k, v in outcomes.items() if k.startswith("feedback")}
    return FeedbackResult(
        clients=clients,
        seconds=seconds,
        predictions=outcomes["predict 200"],
        feedback_calls=sum(feedback.values()),
        refused=sum(v for k, v in feedback.items() if k != "feedback 200"),
        codes=dict(sorted(outcomes.items())),
    )
