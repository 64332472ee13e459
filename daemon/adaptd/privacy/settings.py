"""``privacy.*``: what is kept of the texts adaptd serves and learns from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from adaptd.privacy.patterns import KINDS, Kind
from adaptd.settings_base import Section

TextMode = Literal["full", "redacted", "hashed"]
#: the environment variable that holds the hash key itself (hex or any string of 32+ bytes)
KEY_ENV = "ADAPTD_PRIVACY_KEY"
#: where the key is created when neither the environment nor privacy.key_file names one
DEFAULT_KEY_FILE = "privacy.key"


class PrivacySettings(Section):
    # full stays the default: it is what adaptd always did, every measured number in the README
    # is on full text, and only the operator knows whether the traffic holds personal data.
    text: TextMode = Field(
        default="full",
        description="What is stored of each text, everywhere it is stored (prediction log, "
        "replay reservoir, golden set, run directories, reference rows): full: the text as "
        "sent; redacted: personal data replaced by typed placeholders (<EMAIL>, <PHONE>, ...); "
        "hashed: the prediction log keeps only a keyed hash (HMAC-SHA256), texts sent back "
        "with feedback are stored redacted for retraining.",
    )
    # Every kind the validated patterns find: each measured at precision >= 0.95 in
    # bench/privacy, so there is no accuracy reason to leave one out.
    detect: list[Kind] = Field(
        default_factory=lambda: list(KINDS),
        min_length=1,
        description=f"Kinds of personal data redacted, out of {list(KINDS)}.",
    )
    key_file: Path | None = Field(
        default=None,
        description=f"File holding the secret key of the text hash. The environment variable "
        f"{KEY_ENV} wins over it. Default: <state_dir>/{DEFAULT_KEY_FILE}, created (mode 0600) on "
        "first start; replicas that share a store must share the key. Never put the key "
        "itself in the config.",
    )
    # A 1 MiB request body holds at most ~1M characters; scanning beyond 100k characters costs
    # milliseconds on the serving path for texts no classifier reads past its first 512 tokens.
    max_redact_chars: int = Field(
        default=100_000,
        ge=1,
        description="Longer texts are not scanned: they are stored as their keyed hash only, "
        'and counted (adaptd_privacy_unredactable_texts_total{reason="too_long"}).',
    )
    log_texts: bool = Field(
        default=False,
        description="Debug switch: log the texts of predict requests at DEBUG level. Off, no "
        "log line carries a text, and log messages are passed through the redactor too "
        "(unless privacy.text is full).",
    )
