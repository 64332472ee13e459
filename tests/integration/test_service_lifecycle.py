"""The daemon's lifecycle: readiness before an adapter exists, promotions made elsewhere, SIGHUP
reloads that keep the previous config on errors, SIGTERM draining with no prediction lost."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from adaptd.adapters import registry
from adaptd.errors import ConfigError
from adaptd.role import Role
from adaptd.service import IllegalTransitionError, RunState, Service
from adaptd.storage import repository as repo
from tests.unit.serving.helpers import (
    NOW,
    build_adapter,
    build_base,
    register,
    settings_for,
    store_for,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("svc-base") / "bert")


@pytest.fixture(scope="module")
def adapter(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_adapter(tiny_base, tmp_path_factory.mktemp("svc-adapters") / "a", seed=1)


@pytest.fixture
def service(tiny_base: Path, tmp_path: Path) -> Iterator[Service]:
    settings = settings_for(tmp_path / "state", tiny_base)
    store_for(settings).dispose()
    svc = Service(settings=settings)
    yield svc
    if svc.state not in (RunState.STOPPED, RunState.CREATED):
        svc.handle_term()
        svc.shutdown()


def _client(svc: Service) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{svc.http_port}", timeout=30)


def test_not_ready_until_an_adapter_is_promoted_elsewhere(service: Service, adapter: Path) -> None:
    service.startup()
    with _client(service) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "no adapter is active" in response.json()["detail"]
        assert client.post("/v1/predict", json={"inputs": ["hi"]}).status_code == 503

        # A promotion made by another process (the CLI) reaches the daemon through the store.
        assert service.engine is not None
        version = register(service.engine, service.settings, adapter)
        assert service.swapper.request_swap() == version
        assert client.get("/readyz").status_code == 200
        prediction = client.post("/v1/predict", json={"inputs": ["hi"]}).json()["predictions"][0]
        assert prediction["adapter"] == version
    assert service.metrics is not None
    info = service.metrics.registry.get_sample_value(
        "adaptd_active_adapter_info", {"version": version}
    )
    assert info == 1


def test_an_incompatible_active_adapter_is_refused_and_named(
    service: Service, tiny_base: Path, tmp_path: Path
) -> None:
    three = build_adapter(tiny_base, tmp_path / "three", ("neg", "neu", "pos"))
    service.startup()
    assert service.engine is not None
    # Written straight into the store, as a buggy or older tool might have left it.
    from adaptd.adapters.layout import content_hash
    from adaptd.storage.records import AdapterRecord

    version = content_hash(three)  # the files are intact: what is wrong is their label set
    repo.add_adapter(
        service.engine,
        AdapterRecord(version=version, status="candidate", path=str(three), created=NOW),
    )
    repo.switch_active_adapter(service.engine, version, NOW, previous_status="retired")
    service.swapper.request_swap()
    reason = service.not_ready()
    assert reason is not None and "refused" in reason and "labels" in reason
    assert service.status()["adapter"]["refused"]


def test_sigterm_drains_and_loses_no_prediction(service: Service, adapter: Path) -> None:
    assert service.settings is not None
    engine = store_for(service.settings)
    register(engine, service.settings, adapter)
    settings = service.settings
    service._settings = settings.model_copy(
        update={"serving": settings.serving.model_copy(update={"log_flush_ms": 60_000.0})}
    )
    service.startup()
    with _client(service) as client:
        for i in range(20):
            assert client.post("/v1/predict", json={"inputs": [f"t{i}a", f"t{i}b"]}).is_success
    service.record_signal(signal.SIGTERM)
    service.main_loop(poll_s=0.01)
    assert service.state == RunState.STOPPING
    service.shutdown()
    assert service.state == RunState.STOPPED
    assert repo.count_predictions(engine) == 40
    with pytest.raises(IllegalTransitionError):
        service.startup()


def test_sighup_with_a_bad_file_keeps_the_previous_config(tiny_base: Path, tmp_path: Path) -> None:
    config = tmp_path / "adaptd.yaml"
    good = {
        "state_dir": "state",
        "model": {"base": str(tiny_base), "max_length": 16, "threads": 1},
        "server": {"port": 0, "max_inputs": 8},
        "serving": {"registry_poll_s": 3600},
    }
    config.write_text(yaml.safe_dump(good))
    from adaptd.config import load_settings

    store_for(load_settings(config)).dispose()
    svc = Service(config, role=Role.SERVE)
    svc.startup()
    try:
        config.write_text("server:\n  max_inputs: [not a number\n")
        svc.record_signal(signal.SIGHUP)
        svc.dispatch(svc._signals.get_nowait())
        assert svc.state == RunState.RUNNING
        assert svc.settings.server.max_inputs == 8
        assert svc.metrics is not None
        assert svc.metrics.registry.get_sample_value("adaptd_config_reload_errors_total") == 1
        last = svc.status()["config"]["last_reload"]
        assert last["ok"] is False and "adaptd.yaml" in last["error"]

        config.write_text(
            yaml.safe_dump({**good, "serving": {"registry_poll_s": 3600, "mystery": 1}})
        )
        assert svc.handle_hup() is False
        assert "mystery" in svc.status()["config"]["last_reload"]["error"]

        config.write_text(yaml.safe_dump({**good, "server": {"port": 0, "max_inputs": 3}}))
        assert svc.handle_hup() is True
        assert svc.settings.server.max_inputs == 3
        with _client(svc) as client:
            response = client.post("/v1/predict", json={"inputs": ["a", "b", "c", "d"]})
            assert "limit of 3" in response.json()["detail"]
    finally:
        svc.handle_term()
        svc.shutdown()


def test_sighup_refuses_keys_that_need_a_restart_and_keeps_everything(
    tiny_base: Path, tmp_path: Path
) -> None:
    config = tmp_path / "adaptd.yaml"
    good = {
        "state_dir": "state",
        "model": {"base": str(tiny_base), "max_length": 16, "threads": 1},
        "server": {"port": 0, "max_inputs": 8},
        "serving": {"registry_poll_s": 3600, "max_batch": 32, "log_flush_ms": 200},
    }
    config.write_text(yaml.safe_dump(good))
    from adaptd.config import load_settings

    store_for(load_settings(config)).dispose()
    svc = Service(config, role=Role.SERVE)
    svc.startup()
    try:
        before = svc.settings
        changed = {
            **good,
            "state_dir": "elsewhere",
            "store": {"url": f"sqlite:///{tmp_path / 'other.db'}"},
            "model": {**good["model"], "base": str(tmp_path / "another-model")},
            "server": {"port": 9, "max_inputs": 3},  # max_inputs alone could be applied
        }
        config.write_text(yaml.safe_dump(changed))
        assert svc.handle_hup() is False
        assert svc.settings is before, "nothing of a refused reload is applied"
        last = svc.status()["config"]["last_reload"]
        assert last["ok"] is False
        assert last["restart"] == ["state_dir", "store.url", "model.base", "server.port"]
        for key in ("state_dir", "store.url", "model.base", "server.port", "restart"):
            assert key in last["error"]
        assert svc.metrics is not None
        assert svc.metrics.registry.get_sample_value("adaptd_config_reload_errors_total") == 1

        # Keys the running daemon can apply are applied, down to the parts that copied them.
        live = {**good, "serving": {"registry_poll_s": 3600, "max_batch": 4, "log_flush_ms": 50}}
        config.write_text(yaml.safe_dump(live))
        assert svc.handle_hup() is True
        assert svc.batcher is not None and svc.batcher.max_batch == 4
        assert svc.log is not None and svc.log.flush_s == 0.05
        assert svc.status()["config"]["last_reload"]["ok"] is True
    finally:
        svc.handle_term()
        svc.shutdown()


def test_a_reload_hook_that_refuses_keeps_the_previous_config(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.startup()

    def refuse(_: object) -> None:
        raise ConfigError("policies/drift.yaml:3: when: unknown signal 'nope'")

    service.control_context().register_reload(refuse)
    # The file re-read is the config already in force: only the hook can refuse.
    monkeypatch.setattr("adaptd.service.load_settings", lambda _path: service.settings)
    assert service.handle_hup() is False
    assert "unknown signal" in service.status()["config"]["last_reload"]["error"]


def test_status_providers_are_merged_and_isolated(service: Service) -> None:
    service.startup()
    ctx = service.control_context()
    ctx.register_status("extra", lambda: {"jobs": 2})

    def broken() -> dict[str, object]:
        raise RuntimeError("boom")

    ctx.register_status("broken", broken)
    with pytest.raises(ValueError, match="already registered"):
        ctx.register_status("extra", dict)
    status = service.status()
    assert status["extra"] == {"jobs": 2}
    assert "boom" in status["broken"]["error"]


def test_rollback_is_instant_from_the_previous_slot(
    service: Service, adapter: Path, tiny_base: Path, tmp_path: Path
) -> None:
    second = build_adapter(tiny_base, tmp_path / "second", seed=5)
    service.startup()
    assert service.engine is not None and service.host is not None
    first = register(service.engine, service.settings, adapter)
    service.swapper.request_swap()
    other = register(service.engine, service.settings, second)
    service.swapper.request_swap()
    previous = service.host.previous
    assert previous is not None and previous.version == first
    registry.rollback(service.engine, NOW, reason="test")
    assert service.swapper.request_swap() == first
    assert service.host.active is previous, "rollback reuses the loaded model, no rebuild"
    assert service.host.previous is not None and service.host.previous.version == other


def test_the_registry_watcher_swaps_to_a_promotion_made_elsewhere(
    tiny_base: Path, adapter: Path, tmp_path: Path
) -> None:
    import time

    settings = settings_for(tmp_path / "state", tiny_base, serving={"registry_poll_s": 0.05})
    engine = store_for(settings)
    svc = Service(settings=settings, role=Role.SERVE)
    svc.startup()
    try:
        assert svc.host is not None and svc.host.active is None
        version = register(engine, settings, adapter)  # as `adaptd adapters promote` would
        deadline = time.monotonic() + 30
        while svc.host.active is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert svc.host.active is not None and svc.host.active.version == version
        assert svc.not_ready() is None
    finally:
        svc.handle_term()
        svc.shutdown()
