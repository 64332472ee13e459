from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from adaptd.datasets.records import Example
from adaptd.errors import ConfigError
from adaptd.metrics import Metrics
from adaptd.privacy.guard import TextGuard, build_guard, keyed_hash
from adaptd.privacy.keys import load_key
from adaptd.privacy.logs import RedactingFilter, log_filter
from adaptd.privacy.patterns import Kind
from adaptd.privacy.redact import Redacted
from adaptd.privacy.settings import KEY_ENV, PrivacySettings

KEY = b"0123456789abcdef" * 2
TEXT = "great film, mail me at fan@example.com"


def _metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def _value(m: Metrics, name: str, **labels: str) -> float:
    value = m.registry.get_sample_value(name, labels)
    assert value is not None, name
    return value


def test_modes_decide_what_the_log_keeps() -> None:
    digest = keyed_hash(KEY, TEXT)
    full = TextGuard(mode="full", key=KEY).for_log(TEXT)
    assert (full.text, full.text_hash) == (TEXT, digest)
    redacted = TextGuard(mode="redacted", key=KEY).for_log(TEXT)
    assert (redacted.text, redacted.text_hash) == ("great film, mail me at <EMAIL>", digest)
    hashed = TextGuard(mode="hashed", key=KEY).for_log(TEXT)
    assert (hashed.text, hashed.text_hash) == (None, digest)


def test_the_hash_is_keyed() -> None:
    assert keyed_hash(KEY, TEXT) != keyed_hash(b"x" * 32, TEXT)
    assert len(keyed_hash(KEY, TEXT)) == 64
    # a lone surrogate (valid JSON) hashes instead of failing the request
    assert len(keyed_hash(KEY, "bad \udcff")) == 64
    assert TextGuard(mode="hashed", key=KEY).matches(TEXT, keyed_hash(KEY, TEXT))


def test_a_redactor_that_throws_leaves_only_the_hash_and_is_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(text: str, kinds: tuple[Kind, ...]) -> Redacted:
        raise RuntimeError(f"boom on {text}")

    metrics = _metrics()
    guard = TextGuard(mode="redacted", key=KEY, metrics=metrics.privacy, redactor=broken)
    with caplog.at_level(logging.WARNING):
        stored = guard.for_log(TEXT)
    assert stored.text is None and stored.text_hash == keyed_hash(KEY, TEXT)
    assert _value(metrics, "adaptd_privacy_unredactable_texts_total", reason="error") == 1
    assert "fan@example.com" not in caplog.text and "boom" not in caplog.text


def test_too_long_texts_are_not_scanned() -> None:
    metrics = _metrics()
    guard = TextGuard(mode="redacted", key=KEY, max_chars=10, metrics=metrics.privacy)
    assert guard.scrub("x" * 11) is None
    assert guard.scrub("x" * 10) == "x" * 10
    assert _value(metrics, "adaptd_privacy_unredactable_texts_total", reason="too_long") == 1


def test_redactions_are_counted_by_kind() -> None:
    metrics = _metrics()
    guard = TextGuard(mode="redacted", key=KEY, metrics=metrics.privacy)
    guard.scrub("a@b.com c@d.org 10.1.2.3")
    assert _value(metrics, "adaptd_privacy_redactions_total", kind="email") == 2
    assert _value(metrics, "adaptd_privacy_redactions_total", kind="ip") == 1
    assert _value(metrics, "adaptd_privacy_redactions_total", kind="card") == 0


def test_examples_are_scrubbed_and_unredactable_ones_left_out() -> None:
    guard = TextGuard(mode="redacted", key=KEY, max_chars=40)
    examples = [
        Example(text=TEXT, label="positive"),
        Example(text="x" * 41, label="negative"),
        Example(text="fine", label="negative"),
    ]
    out = guard.scrub_examples(examples)
    assert [e.text for e in out] == ["great film, mail me at <EMAIL>", "fine"]
    assert out[0].label == "positive"
    assert TextGuard(mode="full", key=KEY).scrub_examples(examples) == examples


def test_the_default_key_file_is_created_once_private(tmp_path: Path) -> None:
    settings = PrivacySettings(text="hashed")
    first = load_key(settings, tmp_path, environ={})
    path = tmp_path / "privacy.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_key(settings, tmp_path, environ={}) == first
    assert len(first) >= 32


def test_the_environment_wins_and_short_keys_are_refused(tmp_path: Path) -> None:
    settings = PrivacySettings(text="hashed")
    assert load_key(settings, tmp_path, environ={KEY_ENV: "k" * 40}) == b"k" * 40
    assert not (tmp_path / "privacy.key").exists()
    with pytest.raises(ConfigError, match="at least 32"):
        load_key(settings, tmp_path, environ={KEY_ENV: "short"})


def test_a_named_key_file_must_exist(tmp_path: Path) -> None:
    settings = PrivacySettings(text="hashed", key_file=tmp_path / "missing.key")
    with pytest.raises(ConfigError, match="missing.key does not exist"):
        load_key(settings, tmp_path, environ={})
    (tmp_path / "missing.key").write_text("s" * 64)
    assert load_key(settings, tmp_path, environ={}) == b"s" * 64


def test_full_mode_never_creates_a_key_by_scrubbing(tmp_path: Path) -> None:
    guard = build_guard(PrivacySettings(), tmp_path)
    guard.scrub_examples([Example(text=TEXT)])
    assert not (tmp_path / "privacy.key").exists()


def test_log_lines_and_tracebacks_are_redacted() -> None:
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "bad row %s", (TEXT,), None)
    try:
        raise ValueError("cannot store +1 415 555 0132")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    RedactingFilter(PrivacySettings(text="redacted")).filter(record)
    line = logging.Formatter().format(record)
    assert "fan@example.com" not in line and "555 0132" not in line
    assert "<EMAIL>" in line and "<PHONE>" in line and "ValueError" in line


def test_log_filter_follows_the_mode_and_the_debug_switch() -> None:
    assert log_filter(PrivacySettings()) is None
    assert log_filter(PrivacySettings(text="redacted", log_texts=True)) is None
    assert isinstance(log_filter(PrivacySettings(text="hashed")), RedactingFilter)
