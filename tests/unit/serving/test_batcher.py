from __future__ import annotations

import time
from pathlib import Path

import pytest

from adaptd.metrics import Metrics, new_metrics
from adaptd.serving.batcher import Batcher, NotReadyError, QueueFullError
from adaptd.serving.host import ModelHost
from tests.unit.serving.helpers import LABELS


@pytest.fixture(scope="module")
def host(tiny_base: Path, adapter_a: Path) -> ModelHost:
    host = ModelHost(base=str(tiny_base), labels=LABELS, max_length=16, threads=1)
    host.offer(host.build("a", adapter_a))
    return host


@pytest.fixture
def metrics() -> Metrics:
    return new_metrics()


def _batcher(host: ModelHost, metrics: Metrics, **kw: float) -> Batcher:
    args = {"max_batch": 2, "max_wait_ms": 0.0, "queue_size": 8} | kw
    return Batcher(host, metrics, **args)  # type: ignore[arg-type]


def test_batches_hold_at_most_max_batch_texts(host: ModelHost, metrics: Metrics) -> None:
    batcher = _batcher(host, metrics)
    future = batcher.submit(["one", "two", "three", "four", "five"])
    sizes = []
    while batch := batcher.take_batch(block=False):
        sizes.append(len(batch))
        batcher.run_batch(batch)
    assert sizes == [2, 2, 1]
    predictions = future.result(timeout=0)
    assert len(predictions) == 5
    assert metrics.registry.get_sample_value("adaptd_batch_size_count") == 3
    counted = sum(
        metrics.registry.get_sample_value("adaptd_predictions_total", {"adapter": "a", "label": x})
        or 0
        for x in LABELS
    )
    assert counted == 5


def test_a_batch_waits_max_wait_for_more_texts(host: ModelHost, metrics: Metrics) -> None:
    batcher = _batcher(host, metrics, max_wait_ms=40.0)
    batcher.submit(["lonely"])
    started = time.monotonic()
    batch = batcher.take_batch()
    assert len(batch) == 1
    assert time.monotonic() - started >= 0.035


def test_a_full_batch_does_not_wait(host: ModelHost, metrics: Metrics) -> None:
    batcher = _batcher(host, metrics, max_wait_ms=5000.0)
    batcher.submit(["one", "two"])
    started = time.monotonic()
    assert len(batcher.take_batch()) == 2
    assert time.monotonic() - started < 1.0


def test_a_full_queue_refuses_and_counts(host: ModelHost, metrics: Metrics) -> None:
    batcher = _batcher(host, metrics, queue_size=3)
    batcher.submit(["one", "two"])
    with pytest.raises(QueueFullError, match="full"):
        batcher.submit(["three", "four"])
    assert batcher.depth == 2, "a refused request must not be half queued"
    assert metrics.registry.get_sample_value("adaptd_queue_rejections_total") == 1
    assert metrics.registry.get_sample_value("adaptd_queue_depth") == 2


def test_predictions_carry_label_probabilities_embedding_and_version(
    host: ModelHost, metrics: Metrics
) -> None:
    batcher = _batcher(host, metrics, max_batch=8)
    future = batcher.submit(["fine", "a very long text " * 40])
    batcher.run_batch(batcher.take_batch(block=False))
    short, long = future.result(timeout=0)
    for p in (short, long):
        assert p.label in LABELS
        assert p.score == max(p.probabilities)
        assert abs(sum(p.probabilities) - 1.0) < 1e-5
        assert p.embedding.shape == (32,)
        assert p.adapter == "a"
    assert (short.truncated, long.truncated) == (False, True)
    assert metrics.registry.get_sample_value("adaptd_truncated_inputs_total") == 1


def test_texts_of_mixed_lengths_get_the_answers_they_get_alone(
    host: ModelHost, metrics: Metrics
) -> None:
    """The batch is cut into runs of similar length (serving.padding) and put back in order:
    each text's prediction is the one it gets in a batch of its own."""
    import numpy as np

    texts = ["good " * (1 + (i * 7) % 13) + ("bad " if i % 3 else "") + str(i) for i in range(24)]
    batcher = _batcher(host, metrics, max_batch=32, queue_size=64)
    future = batcher.submit(texts)
    batcher.run_batch(batcher.take_batch(block=False))
    together = future.result(timeout=0)
    assert metrics.registry.get_sample_value("adaptd_batch_size_count") == 1
    for text, prediction in zip(texts, together, strict=True):
        alone = batcher.submit([text])
        batcher.run_batch(batcher.take_batch(block=False))
        (single,) = alone.result(timeout=0)
        assert np.allclose(prediction.probabilities, single.probabilities, atol=1e-5), text
        assert np.allclose(prediction.embedding, single.embedding, atol=1e-4), text


def test_nothing_is_accepted_before_an_adapter_is_active(tiny_base: Path, metrics: Metrics) -> None:
    empty = ModelHost(base=str(tiny_base), labels=LABELS, max_length=16)
    with pytest.raises(NotReadyError, match="no adapter"):
        _batcher(empty, metrics).submit(["hello"])


def test_stop_finishes_queued_requests(host: ModelHost, metrics: Metrics) -> None:
    batcher = _batcher(host, metrics, max_batch=4)
    batcher.start()
    futures = [batcher.submit([f"text {i}"]) for i in range(6)]
    batcher.stop(timeout=10)
    assert all(len(f.result(timeout=0)) == 1 for f in futures)
    with pytest.raises(NotReadyError):
        batcher.submit(["late"])


def test_requests_are_not_split_across_batches_when_they_fit(
    host: ModelHost, metrics: Metrics
) -> None:
    batcher = _batcher(host, metrics, max_batch=3)
    first = batcher.submit(["a", "b"])
    second = batcher.submit(["c", "d"])
    sizes = []
    while batch := batcher.take_batch(block=False):
        sizes.append(len(batch))
        batcher.run_batch(batch)
    assert sizes == [2, 2]
    assert len(first.result(timeout=0)) == len(second.result(timeout=0)) == 2
