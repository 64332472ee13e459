from __future__ import annotations

from pathlib import Path

import pytest

from adaptd.config import ensure_state_dir, json_schema, load_settings
from adaptd.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file_run_on_the_shipped_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADAPTD_CONFIG", raising=False)
    settings = load_settings()
    assert settings.model.base is None
    assert settings.store_url == f"sqlite:///{tmp_path / 'state' / 'adaptd.db'}"
    assert settings.server.host == "127.0.0.1"


def test_relative_paths_resolve_against_the_config_file(tmp_path, monkeypatch):
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    write(conf_dir / "p.yaml", "policies: []\n")
    cfg = write(conf_dir / "adaptd.yaml", "state_dir: data\npolicies: [p.yaml]\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(cfg)
    assert settings.state_dir == conf_dir / "data"
    assert settings.policies == [conf_dir / "p.yaml"]


def test_environment_overrides_the_file(tmp_path, monkeypatch):
    cfg = write(tmp_path / "a.yaml", "server:\n  port: 9000\n  host: 0.0.0.0\n")
    monkeypatch.setenv("ADAPTD_SERVER__PORT", "8099")
    settings = load_settings(cfg)
    assert settings.server.port == 8099
    assert settings.server.host == "0.0.0.0"


def test_config_path_from_environment(tmp_path, monkeypatch):
    cfg = write(tmp_path / "x.yaml", "model:\n  labels: [a, b, c]\n")
    monkeypatch.setenv("ADAPTD_CONFIG", str(cfg))
    assert load_settings().model.labels == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server:\n  prot: 1\n", ":2: server.prot: unknown key"),
        ("bogus: 1\n", ":1: bogus: unknown key"),
        ("server:\n  port: abc\n", ":2: server.port: Input should be a valid integer"),
        ("model:\n  labels: [only]\n", ":2: model.labels: List should have at least 2 items"),
        ("server: [1, 2]\n", ":1: server: Input should be a valid dictionary"),
        ("server:\n  port: [\n", "YAML syntax error"),
        ("- a\n- b\n", "the top level must be a mapping"),
    ],
)
def test_bad_config_names_file_line_and_key(tmp_path, text, expected):
    cfg = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_settings(cfg)
    assert expected in str(info.value)
    assert str(cfg) in str(info.value)


def test_missing_policy_file_names_the_path(tmp_path):
    cfg = write(tmp_path / "a.yaml", "policies:\n  - ok.yaml\n  - missing.yaml\n")
    write(tmp_path / "ok.yaml", "x: 1\n")
    with pytest.raises(
        ConfigError, match=r"a.yaml:3: policies\[1\]: file not found: .*missing.yaml"
    ):
        load_settings(cfg)


def test_named_config_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: file not found"):
        load_settings(tmp_path / "nope.yaml")


def test_empty_config_file_means_defaults(tmp_path):
    cfg = write(tmp_path / "empty.yaml", "")
    assert load_settings(cfg).server.port == 8080


def test_unwritable_state_dir_is_named(tmp_path):
    blocker = write(tmp_path / "file", "not a dir")
    cfg = write(tmp_path / "a.yaml", f"state_dir: {blocker}/sub\n")
    with pytest.raises(ConfigError, match="state_dir: not writable: .*file/sub"):
        ensure_state_dir(load_settings(cfg))


def test_json_schema_describes_every_section():
    schema = json_schema()
    assert schema["additionalProperties"] is False
    for section in ("server", "model", "store", "serving", "monitors", "retraining", "policies"):
        assert section in schema["properties"]
    port = schema["$defs"]["ServerSettings"]["properties"]["port"]
    assert port["description"]
