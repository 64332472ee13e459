"""The CLI as an operator meets it: real subprocesses, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adaptd.storage import migrate


def adaptd(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("ADAPTD_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "adaptd", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_error(
    result: subprocess.CompletedProcess[str], code: int, *needles: str
) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_the_commands(tmp_path):
    result = adaptd("--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("config", "db"):
        assert command in result.stdout


def test_commands_that_do_not_serve_or_train_do_not_load_torch(tmp_path):
    # `adaptd status` or `adaptd policy validate` waited seconds for torch before their first
    # line when every command module imported the service at startup.
    probe = (
        "import sys, adaptd.cli\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"importing the command line loaded {done.stdout.strip()}"


def test_db_upgrade_creates_the_schema_on_sqlite(tmp_path):
    result = adaptd("db", "upgrade", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    head = migrate.head_revision()
    assert f"empty -> {head}" in result.stdout
    assert (tmp_path / "state" / "adaptd.db").is_file()
    again = adaptd("db", "current", cwd=tmp_path)
    assert f"store: {head}" in again.stdout


@pytest.mark.postgres
def test_db_upgrade_creates_the_schema_on_postgresql(tmp_path, pg_database):
    result = adaptd("db", "upgrade", cwd=tmp_path, env={"ADAPTD_STORE__URL": pg_database})
    assert result.returncode == 0, result.stderr
    assert f"empty -> {migrate.head_revision()}" in result.stdout


def test_config_show_json_and_schema(tmp_path):
    (tmp_path / "adaptd.yaml").write_text("server:\n  admin_token: {env: ADMIN_TOKEN}\n")
    shown = adaptd("config", "show", "--json", cwd=tmp_path)
    assert shown.returncode == 0
    data = json.loads(shown.stdout)
    assert data["server"]["admin_token"] == {"file": None, "env": "ADMIN_TOKEN"}
    schema = json.loads(adaptd("config", "schema", cwd=tmp_path).stdout)
    assert "server" in schema["properties"]


@pytest.mark.parametrize(
    ("config", "env", "needles"),
    [
        ("serverr: {}\n", {}, ["serverr: unknown key"]),
        ("server:\n  port: eighty\n", {}, ["server.port"]),
        # the admin token itself is refused: only where it is (a file or a variable)
        ("server:\n  admin_token: s3cret\n", {}, ["server.admin_token", "never goes"]),
        ("", {"ADAPTD_SERVER__ADMIN_TOKEN": "s3cret"}, ["server.admin_token", "never goes"]),
        ("policies: [gone.yaml]\n", {}, ["policies[0]: file not found", "gone.yaml"]),
        (
            "store:\n  url: postgresql+psycopg://nobody@127.0.0.1:1/none\n",
            {},
            ["store.url: cannot reach", "127.0.0.1:1"],
        ),
        ("store:\n  url: 'not a url'\n", {}, ["store.url"]),
        ("state_dir: /proc/adaptd-cannot-write\n", {}, ["state_dir: not writable"]),
    ],
)
def test_bad_configuration_exits_2_with_one_line(tmp_path, config, env, needles):
    (tmp_path / "adaptd.yaml").write_text(config)
    result = adaptd("db", "upgrade", cwd=tmp_path, env=env)
    assert_one_line_error(result, 2, *needles)


def test_missing_explicit_config_exits_2(tmp_path):
    result = adaptd("db", "upgrade", "--config", "absent.yaml", cwd=tmp_path)
    assert_one_line_error(result, 2, "absent.yaml: file not found")


def test_unknown_command_is_a_usage_error(tmp_path):
    result = adaptd("frobnicate", cwd=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
