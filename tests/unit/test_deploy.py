"""The files operators install (deploy/) agree with the code and with each other."""

from __future__ import annotations

import configparser
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from adaptd.config import Settings, load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
EXAMPLE = DEPLOY / "adaptd.example.yaml"
UNIT = DEPLOY / "adaptd.service"
ENV_FILE = DEPLOY / "adaptd.env"
ENV_LINE = re.compile(r"^#?(?P<key>[A-Z][A-Z0-9_]*)=(?P<value>\S.*)$")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("ADAPTD_"):
            monkeypatch.delenv(key)


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_example_config", DEPLOY / "make_example_config.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def unit() -> configparser.ConfigParser:
    # systemd units repeat keys (Environment=, DeviceAllow=) and use "$" and "%" freely.
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def env_entries() -> dict[str, str]:
    """Every KEY=value line of the env file, the commented-out examples included."""
    entries = {}
    for line in ENV_FILE.read_text().splitlines():
        if match := ENV_LINE.match(line.strip()):
            entries[match["key"]] = match["value"]
    return entries


# --------------------------------------------------------------------------- example config


def test_example_config_loads_and_holds_the_defaults():
    settings = load_settings(EXAMPLE)
    assert settings.state_dir == Path("/var/lib/adaptd")
    defaults = Settings.model_construct().model_dump(mode="json")
    loaded = settings.model_dump(mode="json")
    assert {k: v for k, v in loaded.items() if k != "state_dir"} == {
        k: v for k, v in defaults.items() if k != "state_dir"
    }


def test_example_config_is_generated_from_the_current_code():
    assert EXAMPLE.read_text() == generator().render(), (
        "deploy/adaptd.example.yaml is stale: run "
        "`PYTHONPATH=daemon python deploy/make_example_config.py`"
    )


def test_example_config_documents_every_key():
    text = EXAMPLE.read_text()

    def keys(model: type, prefix: str) -> list[str]:
        out = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            out.append(prefix + name)
            annotation = field.annotation
            if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
                out.extend(keys(annotation, prefix + name + "."))
        return out

    lines = text.splitlines()
    for key in keys(Settings, ""):
        leaf = key.rsplit(".", 1)[-1]
        depth = key.count(".")
        index = next(
            i for i, line in enumerate(lines) if line.startswith("  " * depth + leaf + ":")
        )
        assert lines[index - 1].lstrip().startswith("#"), f"{key} has no comment"


# --------------------------------------------------------------------------- systemd unit


def test_unit_has_what_operators_and_the_readme_rely_on():
    parsed = unit()
    service = parsed["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"] == (
        "/opt/adaptd/.venv/bin/adaptd serve --config /etc/adaptd/adaptd.yaml"
    )
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "-/etc/adaptd/adaptd.env"
    assert service["StateDirectory"] == "adaptd"
    assert service["RestartPreventExitStatus"] == "2"  # config errors (exit 2) are not retried
    for hardening in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID"):
        assert service[hardening] == "yes", hardening
    assert service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    assert "Description" in parsed["Unit"]


def test_unit_arms_the_watchdog_the_daemon_feeds():
    from adaptd.liveness import DEFAULT_STALL_S, stall_limit

    service = unit()["Service"]
    seconds = float(service["WatchdogSec"].removesuffix("s"))
    # Pings come from a thread of the main process, which NotifyAccess=main accepts.
    assert service["NotifyAccess"] in {"main", "all"}
    assert 0 < stall_limit(seconds) <= DEFAULT_STALL_S


def test_unit_env_file_and_example_agree_on_paths():
    service = unit()["Service"]
    config_path = service["ExecStart"].split("--config ", 1)[1]
    assert env_entries()["ADAPTD_CONFIG"] == config_path
    # ProtectSystem=strict leaves only the StateDirectory writable: state_dir must be it.
    assert load_settings(EXAMPLE).state_dir == Path("/var/lib") / service["StateDirectory"]
    assert service["WorkingDirectory"] == "/var/lib/" + service["StateDirectory"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    """systemd's own parser: unknown keys and unparseable values are warnings on stderr."""
    copy = tmp_path / "adaptd.service"
    # verify also checks that ExecStart's binary exists, which it only does once installed.
    copy.write_text(UNIT.read_text().replace("/opt/adaptd/.venv/bin/adaptd", sys.executable))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    complaints = [line for line in result.stderr.splitlines() if "adaptd" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


# --------------------------------------------------------------------------- env file


def test_env_file_has_only_comments_and_plain_assignments():
    for number, line in enumerate(ENV_FILE.read_text().splitlines(), 1):
        stripped = line.strip()
        assert not stripped or stripped.startswith("#") or ENV_LINE.match(stripped), (
            f"adaptd.env:{number}: not KEY=value: {line!r}"
        )


def test_every_variable_in_the_env_file_is_a_real_setting(monkeypatch):
    """Uncommenting any example must give a valid config that carries the value."""
    entries = {k: v for k, v in env_entries().items() if k.startswith("ADAPTD_")}
    assert "ADAPTD_SERVER__ADMIN_TOKEN__ENV" in entries
    for key, value in entries.items():
        if key != "ADAPTD_CONFIG":
            monkeypatch.setenv(key, value)
    settings = load_settings(EXAMPLE)
    assert settings.server.host == entries["ADAPTD_SERVER__HOST"]
    assert settings.server.admin_token is not None
    assert settings.server.admin_token.env == entries["ADAPTD_SERVER__ADMIN_TOKEN__ENV"]
    assert settings.store.url == entries["ADAPTD_STORE__URL"]
    for key, value in entries.items():
        if key == "ADAPTD_CONFIG":
            continue
        node: object = settings
        for part in key.removeprefix("ADAPTD_").lower().split("__"):
            node = getattr(node, part)
        assert str(node).lower() == value.lower(), key
