"""adaptd.security: masking, private permissions, bearer secrets, the training child's env."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from adaptd.errors import ConfigError, StoreUnreachableError
from adaptd.logsetup import configure_logging
from adaptd.security import (
    bearer_matches,
    child_env,
    make_private_dir,
    mask_secrets,
    mask_url,
    ray_env_vars,
    read_secret,
)
from adaptd.storage.engine import check_reachable, make_engine

SECRET = "hunter2-Pa55"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            f"postgresql+psycopg://adaptd:{SECRET}@db.internal:5432/adaptd",
            "postgresql+psycopg://adaptd:***@db.internal:5432/adaptd",
        ),
        (
            f"cannot reach 'postgresql://u:{SECRET}@h/db' (timeout)",
            "cannot reach 'postgresql://u:***@h/db' (timeout)",
        ),
        (f"https://bot:{SECRET}@hooks.example/alert", "https://bot:***@hooks.example/alert"),
        (
            f"host=/run/pg user=x password={SECRET} dbname=y",
            "host=/run/pg user=x password=*** dbname=y",
        ),
        (
            f"postgresql://u@/db?host=/tmp/s&password={SECRET}",
            "postgresql://u@/db?host=/tmp/s&password=***",
        ),
        ("sqlite:////var/lib/adaptd/adaptd.db", "sqlite:////var/lib/adaptd/adaptd.db"),
        ("postgresql://adaptd@localhost/adaptd", "postgresql://adaptd@localhost/adaptd"),
    ],
)
def test_mask_secrets_hides_every_password_and_nothing_else(text: str, shown: str) -> None:
    assert mask_secrets(text) == shown
    assert SECRET not in mask_secrets(text)


def test_mask_url_keeps_none() -> None:
    assert mask_url(None) is None


def test_an_unparseable_store_url_is_reported_without_its_password() -> None:
    with pytest.raises(StoreUnreachableError) as caught:
        make_engine(f"not a url://u:{SECRET}@h")
    assert SECRET not in str(caught.value) and "***" in str(caught.value)


def test_an_unreachable_store_is_reported_without_its_password() -> None:
    engine = make_engine(
        f"postgresql+psycopg://adaptd:{SECRET}@127.0.0.1:1/db", connect_timeout_s=1
    )
    with pytest.raises(StoreUnreachableError) as caught:
        check_reachable(engine)
    message = str(caught.value)
    assert SECRET not in message and "adaptd:***@127.0.0.1:1/db" in message


def test_log_lines_are_masked_whoever_logs_them(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    try:
        logging.getLogger("sqlalchemy.engine").warning(
            "connecting to postgresql://u:%s@h/db", SECRET
        )
        try:
            raise RuntimeError(f"driver said postgresql://u:{SECRET}@h/db")
        except RuntimeError:
            logging.getLogger("adaptd.x").exception("failed")
    finally:
        configure_logging("WARNING")
    err = capsys.readouterr().err
    assert "postgresql://u:***@h/db" in err
    assert SECRET not in err


def test_private_dir_is_0700_even_if_it_existed_open(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.mkdir(mode=0o755)
    make_private_dir(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def test_read_secret_from_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = tmp_path / "token"
    token.write_text("  abc123\n")
    assert read_secret(file=token, env=None, key="server.feedback_token") == "abc123"
    monkeypatch.setenv("FEEDBACK_TOKEN", "from-env")
    assert read_secret(file=None, env="FEEDBACK_TOKEN", key="k") == "from-env"


@pytest.mark.parametrize("case", ["missing file", "empty file", "unset env"])
def test_read_secret_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    empty = tmp_path / "empty"
    empty.write_text("\n")
    kwargs: dict[str, object] = {
        "missing file": {"file": tmp_path / "nope", "env": None},
        "empty file": {"file": empty, "env": None},
        "unset env": {"file": None, "env": "NO_SUCH_TOKEN"},
    }[case]  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"server\.feedback_token\.(file|env)"):
        read_secret(key="server.feedback_token", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer t0ken", True),
        ("bearer t0ken", True),
        ("Bearer t0ken2", False),
        ("Basic t0ken", False),
        ("t0ken", False),
        (None, False),
        ("", False),
    ],
)
def test_bearer_matches(header: str | None, ok: bool) -> None:
    assert bearer_matches(header, "t0ken") is ok


def test_child_env_keeps_what_training_needs_and_drops_secrets() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/var/lib/adaptd",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": "/cache/hf",
        "CUDA_VISIBLE_DEVICES": "0",
        "ADAPTD_DATA_DIR": "/data",
        "ADAPTD_STORE__URL": f"postgresql://u:{SECRET}@h/db",
        "ADAPTD_SERVER__ADMIN_TOKEN": SECRET,
        "ADAPTD_FEEDBACK_TOKEN": SECRET,
        "HF_TOKEN": SECRET,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "DATABASE_URL": SECRET,
        "OMP_NUM_THREADS": "16",
    }
    env = child_env(environ, {"OMP_NUM_THREADS": "2", "PYTHONPATH": "/opt/adaptd"})
    assert env == {
        "PATH": "/usr/bin",
        "HOME": "/var/lib/adaptd",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": "/cache/hf",
        "CUDA_VISIBLE_DEVICES": "0",
        "ADAPTD_DATA_DIR": "/data",
        "OMP_NUM_THREADS": "2",
        "PYTHONPATH": "/opt/adaptd",
    }


def test_the_local_executor_starts_its_child_with_the_scrubbed_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from adaptd.retraining.executors import LocalExecutor

    monkeypatch.setenv("ADAPTD_STORE__URL", f"postgresql://u:{SECRET}@h/db")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    env = LocalExecutor()._env(threads=3)
    assert SECRET not in "".join(env.values())
    assert env["OMP_NUM_THREADS"] == "3" and env["HF_HUB_OFFLINE"] == "1"
    # ... and the child really runs with it: the interpreter and the package import.
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import adaptd.retraining.child, os; print(os.environ.get('HF_TOKEN'))",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "None"
    assert "PATH" in env and env["PATH"] == os.environ["PATH"]


def test_ray_env_vars_blank_the_secrets_a_local_ray_worker_would_inherit() -> None:
    environ = {
        "PATH": "/usr/bin",
        "PYTHONPATH": "/opt/adaptd",
        "RAY_ADDRESS": "auto",
        "ADAPTD_STORE__URL": f"postgresql://u:{SECRET}@h/db",
        "ADAPTD_SERVER__ADMIN_TOKEN": SECRET,
        "HF_TOKEN": SECRET,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "PGPASSWORD": SECRET,
    }
    env = ray_env_vars(environ, {"OMP_NUM_THREADS": "2"})
    # runtime_env can only set variables: the secrets are set to "", nothing else is sent
    # (the worker keeps its own PATH, PYTHONPATH and Ray's variables).
    assert env == {
        "ADAPTD_STORE__URL": "",
        "ADAPTD_SERVER__ADMIN_TOKEN": "",
        "HF_TOKEN": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "PGPASSWORD": "",
        "OMP_NUM_THREADS": "2",
    }
