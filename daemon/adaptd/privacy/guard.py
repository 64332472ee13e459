"""The one door every persisted text goes through: :class:`TextGuard`.

``for_log`` decides what the prediction log keeps of a served text; ``scrub`` what any other
place keeps (training files, the replay reservoir, the golden set, reference rows, texts sent
back with feedback). Neither ever raises: a redactor that fails, or a text too long to scan,
leaves nothing but the keyed hash, and the failure is counted, never logged with the text.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from adaptd.datasets.descriptors import descriptor_rows
from adaptd.datasets.records import Example
from adaptd.privacy.keys import load_key
from adaptd.privacy.metrics import PrivacyMetrics
from adaptd.privacy.patterns import KINDS, Kind
from adaptd.privacy.redact import Redacted, redact
from adaptd.privacy.settings import PrivacySettings, TextMode

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredText:
    """What the prediction log keeps of one text."""

    text: str | None
    text_hash: str
    #: the text's descriptors, kept in its place when the text is not (``hashed``)
    features: dict[str, float] | None = None


def keyed_hash(key: bytes, text: str) -> str:
    """HMAC-SHA256 of the text's UTF-8 bytes, as 64 hex characters (the text_hash column).

    surrogatepass: JSON may carry a lone surrogate; hashing it must not fail the request.
    """
    data = text.encode("utf-8", "surrogatepass")
    return hmac.new(key, data, hashlib.sha256).hexdigest()


class TextGuard:
    def __init__(
        self,
        *,
        mode: TextMode,
        key: bytes | Callable[[], bytes],
        kinds: Sequence[Kind] = KINDS,
        max_chars: int = 100_000,
        metrics: PrivacyMetrics | None = None,
        redactor: Callable[[str, tuple[Kind, ...]], Redacted] = redact,
    ) -> None:
        self.mode = mode
        # Loaded on first use: a retrain in full mode never hashes, and must not create a key
        # file as a side effect. The daemon asks for it at startup to fail fast.
        self._key_source = key
        self._key: bytes | None = key if isinstance(key, bytes) else None
        self._hmac: hmac.HMAC | None = None
        self.kinds = tuple(kinds)
        self.max_chars = max_chars
        self._metrics = metrics
        # a seam for tests (a redactor that throws); production always uses redact()
        self._redact = redactor

    @property
    def key(self) -> bytes:
        if self._key is None:
            assert callable(self._key_source)
            self._key = self._key_source()
        return self._key

    def hash(self, text: str) -> str:
        """:func:`keyed_hash`, from a keyed HMAC state set up once (a third of the cost)."""
        if self._hmac is None:
            self._hmac = hmac.new(self.key, digestmod=hashlib.sha256)
        state = self._hmac.copy()
        state.update(text.encode("utf-8", "surrogatepass"))
        return state.hexdigest()

    def matches(self, text: str, text_hash: str) -> bool:
        return hmac.compare_digest(self.hash(text), text_hash)

    def scrub(self, text: str) -> str | None:
        """The text as it may be persisted: unchanged (full) or redacted; None when it cannot
        be redacted (then only its hash may be kept)."""
        if self.mode == "full":
            return text
        if len(text) > self.max_chars:
            self._count_unredactable("too_long")
            return None
        started = time.perf_counter()
        try:
            result = self._redact(text, self.kinds)
        except Exception as e:  # any bug in a pattern must cost one text, never the request
            self._count_unredactable("error")
            logger.warning(
                "redaction failed (%s); the text is kept only as its keyed hash",
                type(e).__name__,
            )
            return None
        finally:
            if self._metrics is not None:
                self._metrics.redaction_seconds.inc(time.perf_counter() - started)
        if self._metrics is not None:
            for kind, n in result.counts.items():
                self._metrics.redactions.labels(kind).inc(n)
        return result.text

    def for_log(self, text: str) -> StoredText:
        return self.for_logs([text])[0]

    def for_logs(self, texts: Sequence[str]) -> list[StoredText]:
        """What the log keeps of each of a request's texts. ``hashed`` keeps, besides the
        keyed hash, the few numbers text drift is measured on (length, word count, shares of
        upper case, non-letters and links): they say nothing of who wrote the text, and without
        them text drift would see only the texts feedback sends back."""
        if self.mode == "hashed":
            features = descriptor_rows(texts)
            return [StoredText(None, self.hash(t), f) for t, f in zip(texts, features, strict=True)]
        return [StoredText(self.scrub(t), self.hash(t)) for t in texts]

    def scrub_examples(self, examples: Sequence[Example]) -> list[Example]:
        """Examples as they may be written to disk or trained on; those that cannot be
        redacted are left out (an example without its text is no training data)."""
        if self.mode == "full":
            return list(examples)
        out = []
        for example in examples:
            text = self.scrub(example.text)
            if text is not None:
                out.append(example if text == example.text else replace(example, text=text))
        return out

    def _count_unredactable(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.unredactable.labels(reason).inc()


def build_guard(
    settings: PrivacySettings, state_dir: Path, metrics: PrivacyMetrics | None = None
) -> TextGuard:
    """A guard for these settings; its first hash raises :class:`~adaptd.errors.ConfigError`
    when the key is unusable (the daemon reads ``.key`` at startup)."""
    return TextGuard(
        mode=settings.text,
        key=lambda: load_key(settings, state_dir),
        kinds=settings.detect,
        max_chars=settings.max_redact_chars,
        metrics=metrics,
    )


def start_guard(
    settings: PrivacySettings, state_dir: Path, metrics: PrivacyMetrics | None = None
) -> TextGuard:
    """The daemon's guard, its key read now (a bad key stops the start, exit 2), and the one
    consequence of the mode an operator must hear at startup."""
    guard = build_guard(settings, state_dir, metrics)
    _ = guard.key
    if settings.text == "hashed":
        logger.warning(
            "privacy.text is hashed: predictions are logged without their text, so retraining "
            "learns only from feedback that sends the served text again "
            '({"id": ..., "label": ..., "text": ...} on POST /v1/feedback); feedback without '
            "it labels monitoring data only"
        )
    elif settings.text == "redacted":
        logger.info("privacy.text is redacted: %s are replaced before storing", settings.detect)
    return guard
