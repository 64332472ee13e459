"""Two daemons with the default role on one store (SQLite, one host): one runs the control loop,
the other serves and stands by, and takes over when the first stops."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from adaptd.service import Service
from tests.unit.serving.helpers import build_adapter, build_base, register, settings_for, store_for


def test_two_daemons_run_one_control_loop_and_the_standby_takes_over(tmp_path: Path) -> None:
    base = build_base(tmp_path / "base")
    adapter = build_adapter(base, tmp_path / "adapter")
    settings = settings_for(tmp_path / "state", base, scheduler={"leader_poll_s": 0.1})
    register(store_for(settings), settings, adapter)
    first, second = Service(settings=settings), Service(settings=settings)
    first.startup()
    second.startup()
    try:
        assert first.control is not None and second.control is None
        assert first.metrics is not None and second.metrics is not None
        gauge = "adaptd_control_leader"
        assert first.metrics.registry.get_sample_value(gauge) == 1
        assert second.metrics.registry.get_sample_value(gauge) == 0
        with httpx.Client(base_url=f"http://127.0.0.1:{second.http_port}") as client:
            status = client.get("/v1/status").json()
            # The standby serves predictions all the same.
            assert client.post("/v1/predict", json={"inputs": ["hi"]}).status_code == 200
        assert status["leader"]["leader"] is False and status["control"]["standby"] is True
        assert status["leader"]["current_leader"] == first.status()["leader"]["holder"]
        assert status["leader"]["lock"] == "lease"

        first.handle_term()
        first.shutdown()
        deadline = time.monotonic() + 10
        while second.control is None:
            assert time.monotonic() < deadline, "the standby did not take over"
            time.sleep(0.05)
        assert second.metrics.registry.get_sample_value(gauge) == 1
        assert "policies" in second.status()["control"]
    finally:
        for service in (first, second):
            service.handle_term()
            service.shutdown()
