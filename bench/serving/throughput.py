"""(a) throughput through the daemon vs a plain transformers batched forward; the in-process
daemon (b) runs with logging on and off."""

from __future__ import annotations

import tempfile
import time
import uuid
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptd.privacy.guard import TextGuard
from bench.serving.setup import LABELS

MAX_LENGTH = 128
BATCH = 32
#: the log keeps full texts and their keyed hash, as a daemon with default settings does
GUARD = TextGuard(mode="full", key=b"bench-key-" * 4)


class Peer:
    """The peer: the base with a classification head, tokenizer with dynamic padding, B=32."""

    def __init__(self, base: str, *, batch: int = BATCH) -> None:
        from adaptd.modeling.base import load_classifier, load_tokenizer

        self.batch = batch
        self.tokenizer = load_tokenizer(base)
        self.model = load_classifier(base, LABELS, tokenizer=self.tokenizer)

    def run(self, items: list[str]) -> float:
        import torch

        start = time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(items), self.batch):
                enc = self.tokenizer(
                    items[i : i + self.batch],
                    padding=True,
                    truncation=True,
                    max_length=MAX_LENGTH,
                    return_tensors="pt",
                )
                torch.softmax(self.model(**enc).logits, dim=-1).numpy()
        return time.perf_counter() - start


class PlainPeer(Peer):
    """The peer a decoder user would write: ``AutoModelForSequenceClassification`` straight from
    transformers (for a GGUF base, ``gguf_file=``, which dequantizes it as adaptd does), pooled
    on the last real token by transformers itself, no adapter. The tokenizer is adaptd's only so
    both sides see the same tokens (a decoder ships without a pad token; both pad with EOS)."""

    def __init__(self, base: str, *, batch: int = BATCH) -> None:
        import transformers
        from transformers import AutoModelForSequenceClassification

        from adaptd.modeling.base import GGUF_SUFFIX, load_tokenizer

        self.batch = batch
        self.tokenizer = load_tokenizer(base)
        path = Path(base)
        source, extra = (
            (str(path.parent), {"gguf_file": path.name})
            if base.endswith(GGUF_SUFFIX)
            else (base, {})
        )
        transformers.logging.set_verbosity_error()
        self.model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=len(LABELS), pad_token_id=self.tokenizer.pad_token_id, **extra
        )
        self.model.eval()


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MiB."""
    return _status_mb("VmHWM")


def rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MiB."""
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class InProcessDaemon:
    """Batcher + log writer + metrics exactly as the HTTP handler drives them, minus HTTP."""

    def __init__(
        self,
        base: str,
        adapter: Path,
        *,
        log: bool,
        threads: int,
        guard: TextGuard = GUARD,
        max_batch: int = BATCH,
    ) -> None:
        from adaptd.metrics import new_metrics
        from adaptd.serving.batcher import Batcher
        from adaptd.serving.host import ModelHost
        from adaptd.serving.logwriter import PredictionLog
        from adaptd.storage import migrate
        from adaptd.storage.engine import make_engine

        self.metrics = new_metrics()
        self.guard = guard
        self.host = ModelHost(base=base, labels=LABELS, threads=threads, max_length=MAX_LENGTH)
        self.host.offer(self.host.build("bench", adapter))
        self.batcher = Batcher(
            self.host, self.metrics, max_batch=max_batch, max_wait_ms=5.0, queue_size=1 << 20
        )
        self.batcher.start()
        self.batcher.wake()
        self._tmp = tempfile.TemporaryDirectory()
        self.engine = make_engine(f"sqlite:///{Path(self._tmp.name) / 'bench.db'}")
        migrate.upgrade(self.engine)
        self.log: PredictionLog | None = None
        if log:
            self.log = PredictionLog(
                self.engine,
                self.metrics.log,
                buffer_rows=1 << 20,
                buffer_bytes=1 << 32,
                flush_ms=200.0,
            )
            self.log.start()

    def serve(self, items: list[str], *, per_request: int = 4) -> float:
        """Seconds to serve ``items`` in requests of ``per_request`` texts, all queued at once
        (saturating load), every prediction logged when logging is on, until the log is flushed."""
        from adaptd.serving.logwriter import make_row

        start = time.perf_counter()
        futures: list[tuple[list[str], Future[Any]]] = []
        for i in range(0, len(items), per_request):
            chunk = items[i : i + per_request]
            futures.append((chunk, self.batcher.submit(chunk)))
        now = datetime.now(UTC)
        for chunk, future in futures:
            predictions = future.result()
            if self.log is not None:
                rows = []
                for text, p in zip(chunk, predictions, strict=True):
                    rows.append(
                        make_row(
                            prediction_id=uuid.uuid4().hex,
                            ts=now,
                            text=self.guard.for_log(text),
                            attributes={},
                            prediction=p,
                            labels=LABELS,
                            latency_ms=1.0,
                        )
                    )
                self.log.submit(rows)
        if self.log is not None:
            self.log.flush(timeout=60)
        return time.perf_counter() - start

    def close(self) -> None:
        self.batcher.stop()
        if self.log is not None:
            self.log.stop()
        self.engine.dispose()
        self._tmp.cleanup()
