"""Replay labelled or unlabelled examples against a running daemon over its real HTTP API.

Used by ``adaptd demo`` and ``adaptd replay``; stdlib only, so it adds no runtime dependency.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from adaptd.datasets.records import Example
from adaptd.errors import AdaptdError


class ReplayError(AdaptdError):
    """The daemon refused a request in a way that retrying will not fix."""


@dataclass(slots=True)
class ReplayStats:
    sent: int = 0
    correct: int = 0
    labelled: int = 0
    feedback: int = 0
    retries: int = 0
    by_adapter: dict[str, int] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


def post_json(
    url: str, payload: dict[str, Any], *, timeout: float = 60.0, token: str | None = None
) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(payload).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.load(response), dict(response.headers)
    except urllib.error.HTTPError as e:
        body = e.read().decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(body)
        except json.JSONDecodeError:
            parsed = body
        return e.code, parsed, dict(e.headers or {})


def _post_retrying(
    url: str, payload: dict[str, Any], stats: ReplayStats, token: str | None = None
) -> Any:
    """503 means the queue is full: back off as Retry-After says. Anything else 4xx/5xx is fatal."""
    for _ in range(50):
        status, body, headers = post_json(url, payload, token=token)
        if status == 200:
            return body
        if status == 503:
            stats.retries += 1
            time.sleep(min(5.0, float(headers.get("Retry-After", "1") or 1)))
            continue
        raise ReplayError(f"POST {url} answered {status}: {body}")
    raise ReplayError(f"POST {url} kept answering 503 (queue full)")


def replay(
    base_url: str,
    examples: Sequence[Example],
    *,
    batch_size: int = 16,
    send_feedback: bool = True,
    on_batch: Callable[[ReplayStats], None] | None = None,
    id_prefix: str | None = None,
    feedback_token: str | None = None,
) -> ReplayStats:
    """Send ``examples`` in batches to /v1/predict, then their labels to /v1/feedback (with
    ``feedback_token`` as the bearer token when the daemon asks for one)."""
    stats = ReplayStats()
    prefix = id_prefix or uuid.uuid4().hex[:8]
    base = base_url.rstrip("/")
    for start in range(0, len(examples), batch_size):
        batch = examples[start : start + batch_size]
        inputs = [
            {"text": e.text, "id": f"{prefix}-{start + i}", "attributes": dict(e.attributes)}
            for i, e in enumerate(batch)
        ]
        body = _post_retrying(f"{base}/v1/predict", {"inputs": inputs}, stats)
        predictions = body["predictions"]
        stats.sent += len(predictions)
        feedback = []
        for example, prediction in zip(batch, predictions, strict=True):
            adapter = str(prediction.get("adapter"))
            stats.by_adapter[adapter] = stats.by_adapter.get(adapter, 0) + 1
            if example.label is not None:
                stats.labelled += 1
                stats.correct += int(prediction["label"] == example.label)
                feedback.append({"id": prediction["id"], "label": example.label})
        if send_feedback and feedback:
            result = _post_retrying(
                f"{base}/v1/feedback", {"feedback": feedback}, stats, feedback_token
            )
            stats.feedback += int(result.get("accepted", 0))
        if on_batch is not None:
            on_batch(stats)
    return stats
