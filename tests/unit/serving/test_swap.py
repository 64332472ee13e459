"""Hot swap under concurrent load: threads hammer the batcher while versions are swapped many
times. No request may fail, and every prediction must come from one whole version that was
active while its request was in flight (its probabilities equal that version's own output)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from adaptd.metrics import new_metrics
from adaptd.serving.batcher import Batcher
from adaptd.serving.host import ModelHost, Swap
from tests.unit.serving.helpers import LABELS

TEXT = "the same text every time, so any mixing of weights would show in the numbers"


def _reference(host: ModelHost, version_model: object) -> np.ndarray:
    import torch

    enc = host.tokenizer([TEXT], return_tensors="pt", truncation=True, max_length=16)
    with torch.inference_mode():
        logits = version_model.model(  # type: ignore[attr-defined]
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
        ).logits
    return torch.softmax(logits.float(), dim=-1)[0].numpy()


def test_many_swaps_under_load_fail_nothing_and_never_mix_versions(
    tiny_base: Path, adapter_a: Path, adapter_b: Path
) -> None:
    host = ModelHost(base=str(tiny_base), labels=LABELS, max_length=16, threads=1)
    models = {"a": host.build("a", adapter_a), "b": host.build("b", adapter_b)}
    expected = {v: _reference(host, m) for v, m in models.items()}
    assert not np.allclose(expected["a"], expected["b"]), "the versions must be distinguishable"

    timeline: list[tuple[float, str]] = []

    def on_swap(swap: Swap) -> None:
        timeline.append((time.monotonic(), swap.new.version))

    metrics = new_metrics()
    batcher = Batcher(host, metrics, max_batch=8, max_wait_ms=0.5, queue_size=4096, on_swap=on_swap)
    host.offer(models["a"])
    batcher.start()
    batcher.wake()
    while host.active is None:
        time.sleep(0.001)

    stop = threading.Event()
    results: list[tuple[float, float, list[str], list[tuple[float, ...]]]] = []
    failures: list[BaseException] = []

    def client() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                preds = batcher.submit([TEXT, TEXT]).result(timeout=30)
            except BaseException as e:  # any failure is what the test counts
                failures.append(e)
                continue
            results.append(
                (
                    started,
                    time.monotonic(),
                    [p.adapter for p in preds],
                    [p.probabilities for p in preds],
                )
            )

    clients = [threading.Thread(target=client) for _ in range(4)]
    for c in clients:
        c.start()
    swaps = 40
    first = len(timeline)  # the swap to "a" at start
    for i in range(swaps):
        host.offer(models["b" if i % 2 == 0 else "a"])
        batcher.wake()
        # Each offer is taken between two batches; waiting for it (rather than sleeping a fixed
        # time) keeps the test about swapping, not about how loaded the machine is.
        deadline = time.monotonic() + 10
        while len(timeline) < first + i + 1:
            assert time.monotonic() < deadline, f"offer {i} never served"
            time.sleep(0.001)
        time.sleep(0.005)  # let some traffic through on each version
    stop.set()
    for c in clients:
        c.join()
    batcher.stop()

    assert failures == []
    assert len(results) > swaps
    assert metrics.registry.get_sample_value("adaptd_adapter_swaps_total") == len(timeline)
    assert len(timeline) == first + swaps
    seen = set()
    for started, ended, versions, probabilities in results:
        assert len(set(versions)) == 1, "a request that fits a batch runs on one version"
        for version, probs in zip(versions, probabilities, strict=True):
            seen.add(version)
            np.testing.assert_allclose(probs, expected[version], atol=1e-5)
            # the version was active at some point during [started, ended]
            active_at_start = [v for t, v in timeline if t <= started][-1:] or ["a"]
            during = {v for t, v in timeline if started <= t <= ended}
            assert version in set(active_at_start) | during
    assert seen == {"a", "b"}
