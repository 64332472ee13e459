"""A real Prometheus (and Alertmanager) for the tests, from Debian's packages, on 127.0.0.1 only."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        q = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def targets_up(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=5) as response:
            body = json.load(response)
        active = body["data"]["activeTargets"]
        return bool(active) and all(t["health"] == "up" for t in active)

    def wait_until_scraped(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.targets_up() and self.query("up"):
                return
            time.sleep(0.5)
        raise TimeoutError("Prometheus did not scrape the target in time")


@contextmanager
def prometheus_server(
    target: str, *, rules: Path | None = None, alertmanager: str | None = None
) -> Iterator[Prometheus]:
    """Start Prometheus scraping ``target`` (host:port) every second, evaluating ``rules`` and
    sending alerts to ``alertmanager`` (host:port) when given; RuntimeError if impossible."""
    rule_files = f"rule_files: ['{rules}']\n" if rules else ""
    alerting = (
        "alerting:\n  alertmanagers:\n    - static_configs:\n"
        + f"        - targets: ['{alertmanager}']\n"
        if alertmanager
        else ""
    )
    config = (
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        + rule_files
        + alerting
        + "scrape_configs:\n  - job_name: adaptd\n    static_configs:\n"
        + f"      - targets: ['{target}']\n"
    )
    with _server(
        "prometheus",
        config,
        lambda workdir, port: [
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
    ) as url:
        yield Prometheus(url)


class Alertmanager:
    def __init__(self, url: str) -> None:
        self.url = url
        self.address = url.removeprefix("http://")

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts", timeout=5) as response:
            return list(json.load(response))


@contextmanager
def alertmanager_server(webhook: str) -> Iterator[Alertmanager]:
    """Start Alertmanager routing every alert at once to ``webhook`` (a URL); no clustering."""
    config = (
        "route:\n  receiver: hook\n  group_by: ['alertname', 'policy']\n"
        "  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n"
        f"receivers:\n  - name: hook\n    webhook_configs:\n      - url: '{webhook}'\n"
    )
    with _server(
        "prometheus-alertmanager",
        config,
        lambda workdir, port: [
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
    ) as url:
        yield Alertmanager(url)


@contextmanager
def _server(name: str, config: str, flags: Callable[[Path, int], list[str]]) -> Iterator[str]:
    binary = shutil.which(name)
    if binary is None:
        raise RuntimeError(f"{name} is not installed (apt-get install {name})")
    workdir = Path(tempfile.mkdtemp(prefix=f"adaptd-{name}-"))
    port = _free_port()
    (workdir / "config.yml").write_text(config)
    log = (workdir / "log").open("w")
    process = subprocess.Popen(
        [binary, f"--config.file={workdir / 'config.yml'}", *flags(workdir, port)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError as e:
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (workdir / "log").read_text()[-500:]
                    raise RuntimeError(f"{name} did not start: {tail}") from e
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
