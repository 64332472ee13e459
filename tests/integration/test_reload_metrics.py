"""One owner for reload status: the service, on every role, for the config file and the policy
files alike. `AdaptdConfigReloadFailed` reads `adaptd_config_last_reload_success`, so a serve
replica must report 1 after a good start and 0 after a bad adaptd.yaml."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from adaptd.config import load_settings
from adaptd.role import Role
from adaptd.service import RunState, Service
from tests.unit.serving.helpers import build_adapter, build_base, register, store_for

SUCCESS = "adaptd_config_last_reload_success"
ERRORS = "adaptd_config_reload_errors_total"
STAMP = "adaptd_config_last_reload_timestamp_seconds"
POLICY = {"name": "drift-alert", "trip": {"signal": "drift.embedding.auc", "gt": 0.9}}


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    torch.set_num_threads(1)
    return build_base(tmp_path_factory.mktemp("reload-base") / "bert")


def _config(tmp_path: Path, base: Path, **extra: Any) -> dict[str, Any]:
    return {
        "state_dir": str(tmp_path / "state"),
        "model": {"base": str(base), "labels": ["negative", "positive"], "max_length": 16},
        "server": {"host": "127.0.0.1", "port": 0},
        "serving": {"registry_poll_s": 3600},
        **extra,
    }


@pytest.fixture
def started(tmp_path: Path, tiny_base: Path) -> Iterator[Any]:
    services: list[Service] = []

    def start(config: dict[str, Any], role: Role) -> tuple[Service, Path]:
        path = tmp_path / "adaptd.yaml"
        path.write_text(yaml.safe_dump(config))
        settings = load_settings(path)
        engine = store_for(settings)
        register(engine, settings, build_adapter(tiny_base, tmp_path / "adapter", seed=1))
        engine.dispose()
        service = Service(path, role=role)
        services.append(service)
        service.startup()
        return service, path

    yield start
    for service in services:
        if service.state not in (RunState.STOPPED, RunState.CREATED):
            service.handle_term()
            service.shutdown()


def _hup(service: Service) -> None:
    service.record_signal(signal.SIGHUP)
    service.dispatch(service._signals.get_nowait())


def _value(service: Service, name: str) -> float | None:
    assert service.metrics is not None
    return service.metrics.registry.get_sample_value(name)


def test_a_serve_replica_reports_a_good_start_and_a_bad_config_file(
    started: Any, tmp_path: Path, tiny_base: Path
) -> None:
    config = _config(tmp_path, tiny_base)
    service, path = started(config, Role.SERVE)
    assert service.control is None
    assert _value(service, SUCCESS) == 1  # the alert must not fire on a healthy replica
    first = _value(service, STAMP)
    assert first is not None and first > 0

    path.write_text("server: {port: [not a number\n")
    _hup(service)
    assert service.state is RunState.RUNNING
    assert _value(service, SUCCESS) == 0
    assert _value(service, ERRORS) == 1

    path.write_text(yaml.safe_dump(config))
    _hup(service)
    assert _value(service, SUCCESS) == 1
    assert _value(service, ERRORS) == 1


def test_a_bad_policy_file_is_counted_once_by_the_same_gauge(
    started: Any, tmp_path: Path, tiny_base: Path
) -> None:
    policies = tmp_path / "policies.yaml"
    policies.write_text(yaml.safe_dump({"policies": [{**POLICY, "action": "alert"}]}))
    config = _config(tmp_path, tiny_base, policies=[str(policies)])
    service, _ = started(config, Role.ALL)
    assert service.control is not None
    assert _value(service, SUCCESS) == 1

    policies.write_text(yaml.safe_dump({"policies": [{**POLICY, "action": "explode"}]}))
    _hup(service)
    assert _value(service, SUCCESS) == 0
    assert _value(service, ERRORS) == 1
    assert service.control.loop.status()["reload"]["ok"] is False
    assert [p.name for p in service.control.loop.policies] == ["drift-alert"]
