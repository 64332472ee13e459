"""Security of a running daemon, over real HTTP and real files: the feedback bearer token, the
per-text length limit, private file modes whatever the umask, masked secrets in `config show`."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from adaptd.errors import ConfigError
from adaptd.service import Service
from adaptd.storage import repository as repo
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for

ROOT = Path(__file__).resolve().parents[2]
MAX_CHARS = 200


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("security-model")
    base = build_base(root / "bert")
    return base, build_adapter(base, root / "adapter", seed=1)


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secrets") / "feedback-token"
    path.write_text("first-token\n")
    return path


@pytest.fixture(scope="module")
def daemon(
    tiny: tuple[Path, Path], token_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    base, adapter = tiny
    settings = settings_for(
        tmp_path_factory.mktemp("security-state"),
        base,
        server={"feedback_token": {"file": str(token_file)}},
        serving={"max_text_chars": MAX_CHARS},
    )
    engine = store_for(settings)
    register(engine, settings, adapter)
    engine.dispose()
    service = Service(settings=settings)
    service.startup()
    yield service
    service.handle_term()
    service.shutdown()


@pytest.fixture
def client(daemon: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{daemon.http_port}", timeout=30) as c:
        yield c


def _predicted(client: httpx.Client) -> str:
    pid = uuid.uuid4().hex
    response = client.post("/v1/predict", json={"inputs": [{"text": "a text", "id": pid}]})
    assert response.status_code == 200, response.text
    return pid


def _labels_of(service: Service, pid: str) -> list[str]:
    assert service.engine is not None
    return [
        lp.true_label for lp in repo.labelled_predictions(service.engine) if lp.prediction.id == pid
    ]


# --------------------------------------------------------------------------- feedback token


@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic first-token"])
def test_feedback_without_the_token_is_401_and_stores_nothing(
    client: httpx.Client, daemon: Service, header: str | None
) -> None:
    pid = _predicted(client)
    headers = {"Authorization": header} if header else {}
    response = client.post(
        "/v1/feedback", json={"feedback": [{"id": pid, "label": "positive"}]}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    detail = response.json()["detail"]
    assert "server.feedback_token" in detail and "nothing was stored" in detail
    assert "first-token" not in detail
    assert _labels_of(daemon, pid) == []


def test_feedback_with_the_token_is_stored_and_the_file_can_be_rotated(
    client: httpx.Client, daemon: Service, token_file: Path
) -> None:
    pid = _predicted(client)
    body = {"feedback": [{"id": pid, "label": "positive"}]}
    ok = client.post("/v1/feedback", json=body, headers={"Authorization": "Bearer first-token"})
    assert ok.status_code == 200, ok.text
    assert _labels_of(daemon, pid) == ["positive"]
    token_file.write_text("second-token\n")
    try:
        old = client.post(
            "/v1/feedback", json=body, headers={"Authorization": "Bearer first-token"}
        )
        assert old.status_code == 401
        new = client.post(
            "/v1/feedback", json=body, headers={"Authorization": "Bearer second-token"}
        )
        assert new.status_code == 200
    finally:
        token_file.write_text("first-token\n")


def test_predict_needs_no_feedback_token(client: httpx.Client) -> None:
    _predicted(client)


def test_a_missing_token_file_stops_the_start_naming_the_key(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    base, adapter = tiny
    settings = settings_for(
        tmp_path / "state", base, server={"feedback_token": {"file": str(tmp_path / "nope")}}
    )
    engine = store_for(settings)
    register(engine, settings, adapter)
    engine.dispose()
    service = Service(settings=settings)
    try:
        with pytest.raises(ConfigError, match=r"server\.feedback_token\.file: cannot read"):
            service.startup()
    finally:
        service.shutdown()


def test_a_token_written_into_the_config_is_refused_without_echoing_it(tmp_path: Path) -> None:
    config = tmp_path / "adaptd.yaml"
    config.write_text(yaml.safe_dump({"server": {"feedback_token": "s3cr3t-value"}}))
    result = _adaptd("config", "show", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "server.feedback_token" in result.stderr
    assert "s3cr3t-value" not in result.stderr


# --------------------------------------------------------------------------- text length


def test_a_text_over_max_text_chars_is_422_naming_the_key_and_nothing_is_stored(
    client: httpx.Client, daemon: Service
) -> None:
    pid = uuid.uuid4().hex
    response = client.post(
        "/v1/predict",
        json={"inputs": ["fine", {"text": "x" * (MAX_CHARS + 1), "id": pid}]},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "inputs[1].text" in detail and f"serving.max_text_chars ({MAX_CHARS})" in detail
    assert daemon.log is not None and daemon.log.flush(timeout=10)
    assert daemon.engine is not None
    assert all(p.id != pid for p in repo.recent_predictions(daemon.engine, limit=1000))
    at_limit = client.post("/v1/predict", json={"inputs": ["y" * MAX_CHARS]})
    assert at_limit.status_code == 200


# --------------------------------------------------------------------------- real processes


def _adaptd(
    *args: str, cwd: Path, umask: int | None = None, env: dict[str, str] | None = None
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
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


def test_every_file_the_daemon_creates_is_private_whatever_the_umask(
    tiny: tuple[Path, Path], tmp_path: Path
) -> None:
    base, adapter = tiny
    config = tmp_path / "adaptd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": "state",
                "model": {"base": str(base), "max_length": 16, "threads": 1},
                "server": {"port": 0},
                "serving": {"log_flush_ms": 50},
            }
        )
    )
    open_umask = 0o000  # the worst case: everything world-writable unless adaptd says otherwise
    for args in (("db", "upgrade"), ("adapters", "import", str(adapter), "--promote")):
        result = _adaptd(*args, "--config", str(config), cwd=tmp_path, umask=open_umask)
        assert result.returncode == 0, result.stderr
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(120)
    proc = subprocess.Popen(
        [sys.executable, "-m", "adaptd", "serve", "--config", str(config)],
        env={**os.environ, "NOTIFY_SOCKET": str(notify)},
        stderr=subprocess.PIPE,
        preexec_fn=lambda: os.umask(open_umask),
    )
    try:
        message = sock.recv(4096).decode()
        port = int(re.search(r"on 127\.0\.0\.1:(\d+)", message).group(1))  # type: ignore[union-attr]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            assert c.post("/v1/predict", json={"inputs": ["a", "b"]}).status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    state = tmp_path / "state"
    created = [state, *state.rglob("*")]
    assert any(p.name == "adaptd.db" for p in created)
    assert any(p.name == "adapter_model.safetensors" for p in created)
    loose = {
        str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in created
        if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)
    }
    assert loose == {}


def test_config_show_masks_the_store_password_and_tokens(tmp_path: Path) -> None:
    config = tmp_path / "adaptd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": "postgresql+psycopg://adaptd:pa55word@db.internal/adaptd"},
                "server": {"admin_token": {"env": "ADMIN"}, "feedback_token": {"env": "FB_TOKEN"}},
                "alerting": {"webhook_url": "https://bot:hook-secret@hooks.example/x"},
            }
        )
    )
    result = _adaptd("config", "show", "--json", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for secret in ("pa55word", "hook-secret"):
        assert secret not in result.stdout
    shown = json.loads(result.stdout)
    assert shown["store"]["url"] == "postgresql+psycopg://adaptd:***@db.internal/adaptd"
    assert shown["server"]["admin_token"] == {"file": None, "env": "ADMIN"}
    assert shown["server"]["feedback_token"] == {"file": None, "env": "FB_TOKEN"}
    assert shown["alerting"]["webhook_url"] == "https://bot:***@hooks.example/x"


def test_an_unreachable_store_error_hides_the_password(tmp_path: Path) -> None:
    result = _adaptd(
        "db",
        "upgrade",
        cwd=tmp_path,
        env={
            "ADAPTD_STORE__URL": "postgresql+psycopg://adaptd:pa55word@127.0.0.1:1/adaptd",
            "ADAPTD_STORE__CONNECT_TIMEOUT_S": "1",
        },
    )
    assert result.returncode == 2, result.stderr
    assert "pa55word" not in result.stderr and "adaptd:***@127.0.0.1:1" in result.stderr


def test_replay_sends_the_configured_feedback_token(daemon: Service) -> None:
    from adaptd.datasets.records import Example
    from adaptd.demo.traffic import ReplayError, replay

    examples = [Example(text=f"text {i}", label="positive") for i in range(3)]
    base = f"http://127.0.0.1:{daemon.http_port}"
    stats = replay(base, examples, feedback_token=daemon.settings.server.feedback_secret())
    assert stats.feedback == 3
    with pytest.raises(ReplayError, match="401"):
        replay(base, examples)
