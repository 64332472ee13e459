from __future__ import annotations

from pathlib import Path

import pytest

from adaptd.config import load_settings
from adaptd.errors import ConfigError


def test_store_text_is_refused_naming_its_replacement(tmp_path: Path) -> None:
    config = tmp_path / "adaptd.yaml"
    config.write_text("serving:\n  store_text: false\n")
    with pytest.raises(ConfigError, match=r"serving\.store_text was replaced by privacy\.text"):
        load_settings(config)


def test_privacy_keys_validate(tmp_path: Path) -> None:
    config = tmp_path / "adaptd.yaml"
    config.write_text("privacy:\n  text: redacted\n  detect: [email, phone]\n")
    settings = load_settings(config)
    assert settings.privacy.text == "redacted" and settings.privacy.detect == ["email", "phone"]
    config.write_text("privacy:\n  text: encrypted\n")
    with pytest.raises(ConfigError, match="privacy.text"):
        load_settings(config)
    config.write_text("privacy:\n  detect: [person]\n")
    with pytest.raises(ConfigError, match="privacy.detect"):
        load_settings(config)


def test_the_key_itself_is_no_config_key(tmp_path: Path) -> None:
    config = tmp_path / "adaptd.yaml"
    config.write_text("privacy:\n  key: s3cret\n")
    with pytest.raises(ConfigError, match="privacy.key: unknown key"):
        load_settings(config)
