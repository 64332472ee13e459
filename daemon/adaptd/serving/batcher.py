"""Micro-batching: a bounded queue of texts and one worker thread that runs the forward passes.

The worker forms a batch of up to ``max_batch`` texts, waiting at most ``max_wait_ms`` after the
oldest queued text, sorts it by length into the few runs that cost least once padded
(``serving.padding``), and runs one forward pass per run under ``torch.inference_mode``. Between
two batches it asks the host for the model to use, which is the only place a swap takes effect:
a batch never mixes two versions, and each prediction names the version of the model object
that computed it.

Callers get a ``concurrent.futures.Future``; the HTTP layer awaits it with
``asyncio.wrap_future`` so torch never runs on the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adaptd.errors import AdaptdError
from adaptd.liveness import Heartbeat
from adaptd.metrics import Metrics
from adaptd.serving import padding
from adaptd.serving.host import ModelHost, ServingModel, Swap

logger = logging.getLogger(__name__)


class QueueFullError(AdaptdError):
    """The batcher queue cannot take these texts now; the client should retry later."""


class NotReadyError(AdaptdError):
    """No adapter is active yet, or the batcher is stopping."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Prediction:
    label: str
    score: float
    probabilities: tuple[float, ...]
    #: mean-pooled last hidden state (float32), kept for drift monitoring
    embedding: np.ndarray
    adapter: str
    truncated: bool


@dataclass(slots=True, kw_only=True)
class _Request:
    future: Future[list[Prediction]]
    results: list[Prediction | None]
    remaining: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def deliver(self, index: int, prediction: Prediction) -> None:
        with self.lock:
            self.results[index] = prediction
            self.remaining -= 1
            done = self.remaining == 0
        if done and not self.future.done():
            self.future.set_result([p for p in self.results if p is not None])

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


@dataclass(frozen=True, slots=True)
class _Item:
    request: _Request
    index: int
    text: str
    enqueued: float


class Batcher:
    """One worker thread forming micro-batches from a bounded queue of texts."""

    def __init__(
        self,
        host: ModelHost,
        metrics: Metrics,
        *,
        max_batch: int,
        max_wait_ms: float,
        queue_size: int,
        on_swap: Callable[[Swap], None] | None = None,
    ) -> None:
        self._host = host
        self._metrics = metrics
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.queue_size = queue_size
        self._on_swap = on_swap
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._wake = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._busy = False
        #: the watchdog's view of the worker: alive, and no batch running for too long
        self.heartbeat = Heartbeat("batcher")

    # ------------------------------------------------------------------ API

    def submit(self, texts: Sequence[str]) -> Future[list[Prediction]]:
        """Queue ``texts`` as one request; the future resolves to one prediction per text."""
        if self._host.target_version() is None:
            raise NotReadyError("no adapter is active yet")
        future: Future[list[Prediction]] = Future()
        request = _Request(future=future, results=[None] * len(texts), remaining=len(texts))
        now = time.monotonic()
        with self._cond:
            if self._stopping:
                raise NotReadyError("the daemon is shutting down")
            if len(self._queue) + len(texts) > self.queue_size:
                self._metrics.serving.queue_rejections.inc()
                raise QueueFullError(
                    f"the batcher queue is full ({len(self._queue)} of {self.queue_size} texts "
                    "waiting); retry later"
                )
            self._queue.extend(_Item(request, i, t, now) for i, t in enumerate(texts))
            self._metrics.serving.queue_depth.set(len(self._queue))
            self._cond.notify()
        return future

    def configure(self, *, max_batch: int, max_wait_ms: float, queue_size: int) -> None:
        """Apply new limits (SIGHUP); they hold from the next batch on."""
        with self._cond:
            self.max_batch = max_batch
            self.max_wait_s = max_wait_ms / 1000.0
            self.queue_size = queue_size
            self._cond.notify()

    @property
    def depth(self) -> int:
        with self._cond:
            return len(self._queue)

    def wake(self) -> None:
        """Let an idle worker pick up an offered model now rather than at the next request."""
        with self._cond:
            self._wake = True
            self._cond.notify()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="adaptd-batcher", daemon=True)
            self.heartbeat.thread = self._thread
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking requests, finish the queued ones (within ``timeout``), stop the worker."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("batcher did not drain within %.1fs", timeout)
        with self._cond:
            left = list(self._queue)
            self._queue.clear()
        for item in left:
            item.request.fail(NotReadyError("the daemon is shutting down"))

    # ------------------------------------------------------------------ worker

    def take_batch(self, *, block: bool = True) -> list[_Item]:
        """The next micro-batch: up to ``max_batch`` texts, waiting at most ``max_wait_ms``
        after the oldest one. Empty when woken without work or when stopping."""
        with self._cond:
            while block and not self._queue and not self._stopping and not self._wake:
                self._cond.wait()
            self._wake = False
            if not self._queue:
                return []
            deadline = self._queue[0].enqueued + self.max_wait_s
            while block and len(self._queue) < self.max_batch and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            batch = self._pop_whole_requests()
            self._metrics.serving.queue_depth.set(len(self._queue))
            return batch

    def _pop_whole_requests(self) -> list[_Item]:
        """Up to ``max_batch`` items, not splitting a request across batches unless it is larger
        than a batch: then a response names one version even when a swap falls between two
        batches (its texts all ran on the same model object)."""
        batch: list[_Item] = []
        queue = self._queue
        while queue and len(batch) < self.max_batch:
            head = queue[0]
            rest_of_request = len(head.request.results) - head.index
            if batch and len(batch) + rest_of_request > self.max_batch:
                break
            take = min(rest_of_request, self.max_batch - len(batch))
            batch.extend(queue.popleft() for _ in range(take))
        return batch

    def _run(self) -> None:
        while True:
            batch = self.take_batch()
            with self.heartbeat.working():
                self.run_batch(batch)
            with self._cond:
                if self._stopping and not self._queue:
                    break
        # A swap offered while stopping is still applied so status reports the truth.
        self.run_batch([])

    def run_batch(self, batch: list[_Item]) -> None:
        """Pick up a swap if one was offered, then run ``batch`` on one model object."""
        model, swap = self._host.model_for_next_batch()
        if swap is not None:
            self._metrics.adapters.swaps.inc()
            self._metrics.adapters.swap_duration.observe(swap.offered_to_serving_s)
            if self._on_swap is not None:
                try:
                    self._on_swap(swap)
                except Exception:
                    logger.exception("swap callback failed")
        if not batch:
            return
        if model is None:
            for item in batch:
                item.request.fail(NotReadyError("no adapter is active yet"))
            return
        try:
            predictions = self._forward(model, [item.text for item in batch])
        except Exception as e:
            logger.exception("forward pass failed for a batch of %d", len(batch))
            for item in batch:
                item.request.fail(e)
            return
        for item, prediction in zip(batch, predictions, strict=True):
            item.request.deliver(item.index, prediction)

    def _forward(self, serving: ServingModel, texts: list[str]) -> list[Prediction]:
        import torch

        started = time.perf_counter()
        host = self._host
        encoded = host.tokenizer(texts, truncation=True, max_length=host.max_length)
        encodings = getattr(encoded, "encodings", None) or []
        truncated = [bool(e.overflowing) for e in encodings] or [False] * len(texts)
        ids: list[list[int]] = encoded["input_ids"]
        pad = host.tokenizer.pad_token_id or 0
        probs_rows: list[Any] = [None] * len(texts)
        pooled_rows: list[Any] = [None] * len(texts)
        # Texts of similar length share a forward (serving.padding); right padding, as every
        # base is loaded with (modeling.base).
        for group in padding.plan([len(x) for x in ids]):
            longest = max(len(ids[i]) for i in group)
            input_ids = torch.full((len(group), longest), pad, dtype=torch.long)
            attention = torch.zeros((len(group), longest), dtype=torch.long)
            for row, i in enumerate(group):
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                attention[row, : len(ids[i])] = 1
            with torch.inference_mode():
                out = serving.model(
                    input_ids=input_ids.to(host.device),
                    attention_mask=attention.to(host.device),
                    output_hidden_states=True,
                )
                probs = torch.softmax(out.logits.float(), dim=-1)
                hidden = out.hidden_states[-1].float()
                mask = attention.to(hidden.device).unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            for i, p, e in zip(group, probs.cpu().numpy(), pooled.cpu().numpy(), strict=True):
                probs_rows[i], pooled_rows[i] = p, e
        probs_np = np.stack(probs_rows)
        pooled_np = np.stack(pooled_rows)
        labels = host.labels
        version = serving.version
        result = []
        n_truncated = 0
        for i in range(len(texts)):
            row = probs_np[i]
            best = int(row.argmax())
            n_truncated += truncated[i]
            result.append(
                Prediction(
                    label=labels[best],
                    score=float(row[best]),
                    probabilities=tuple(float(p) for p in row),
                    embedding=pooled_np[i],
                    adapter=version,
                    truncated=truncated[i],
                )
            )
            self._metrics.serving.predictions.labels(version, labels[best]).inc()
        if n_truncated:
            self._metrics.serving.truncations.inc(n_truncated)
        self._metrics.serving.batch_size.observe(len(texts))
        self._metrics.serving.batch_duration.observe(time.perf_counter() - started)
        return result
