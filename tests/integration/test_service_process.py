"""`adaptd serve` as a real process: READY=1 over sd_notify, SIGHUP, SIGTERM drains and exits 0
with every served prediction in the store, kill -9 loses at most one flush interval of traffic;
plus the real shipped MiniLM end to end (slow)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from adaptd.storage import repository as repo
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for

ROOT = Path(__file__).resolve().parents[2]


def _wait_ready(sock: socket.socket, proc: subprocess.Popen[bytes]) -> int:
    sock.settimeout(120)
    message = sock.recv(4096).decode()
    assert message.startswith("READY=1"), message
    match = re.search(r"on 127\.0\.0\.1:(\d+)", message)
    assert match, message
    return int(match.group(1))


def test_serve_process_reloads_on_hup_and_drains_on_term(tmp_path: Path) -> None:
    base = build_base(tmp_path / "base")
    adapter = build_adapter(base, tmp_path / "adapter")
    config = tmp_path / "adaptd.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "state_dir": "state",
                "model": {"base": str(base), "max_length": 16, "threads": 1},
                "server": {"port": 0},
                "serving": {"log_flush_ms": 60000},
            }
        )
    )
    settings = settings_for(tmp_path / "state", base)
    engine = store_for(settings)
    version = register(engine, settings, adapter)
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(notify),
        "PYTHONPATH": f"{ROOT / 'daemon'}{os.pathsep}{ROOT}",
        "HF_HUB_OFFLINE": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "adaptd", "serve", "--role", "serve", "--config", str(config)],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        port = _wait_ready(sock, proc)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for i in range(5):
                body = client.post("/v1/predict", json={"inputs": [f"text {i}"]}).json()
                assert body["predictions"][0]["adapter"] == version
            proc.send_signal(signal.SIGHUP)
            assert sock.recv(4096).startswith(b"RELOADING=1")
            assert sock.recv(4096).startswith(b"READY=1")
        proc.send_signal(signal.SIGTERM)
        assert sock.recv(4096).startswith(b"STOPPING=1")
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sock.close()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert repo.count_predictions(engine) == 5, "a graceful stop flushes the prediction log"


@pytest.mark.slow
def test_the_shipped_minilm_serves_end_to_end(tmp_path: Path) -> None:
    import torch

    from adaptd.modeling.base import resolve_base
    from adaptd.service import Service

    torch.set_num_threads(1)
    minilm = Path(resolve_base(None))
    adapter = build_adapter(minilm, tmp_path / "minilm-adapter", rank=4)
    settings = settings_for(tmp_path / "state", minilm, model={"max_length": 64})
    engine = store_for(settings)
    version = register(engine, settings, adapter)
    service = Service(settings=settings)
    service.startup()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{service.http_port}", timeout=60) as c:
            assert c.get("/readyz").status_code == 200
            texts = ["a wonderful, moving film", "dull and far too long", "it was fine"]
            predictions = c.post("/v1/predict", json={"inputs": texts}).json()["predictions"]
            assert [p["adapter"] for p in predictions] == [version] * 3
            feedback = [{"id": predictions[0]["id"], "label": "positive"}]
            assert c.post("/v1/feedback", json={"feedback": feedback}).json() == {"accepted": 1}
    finally:
        service.handle_term()
        service.shutdown()
    stored = repo.recent_predictions(engine)
    assert len(stored) == 3
    assert all(len(p.embedding or b"") == 384 * 2 for p in stored), "MiniLM's 384-dim embedding"


def test_kill_9_loses_at_most_one_flush_interval_of_traffic(tmp_path: Path) -> None:
    from bench.faults import kill9

    base = build_base(tmp_path / "base")
    adapter = build_adapter(base, tmp_path / "adapter")
    result = kill9.run(base, adapter, tmp_path / "run", flush_ms=200.0, rate=40.0, seconds=2.0)
    assert result.answered >= 40, result
    assert result.stored + result.lost == result.answered
    # Rows older than one flush interval (plus the write itself, on a busy machine) are stored.
    if result.oldest_lost_age_s is not None:
        assert result.oldest_lost_age_s <= 0.2 + 0.3, result
