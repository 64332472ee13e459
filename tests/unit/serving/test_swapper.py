"""The swapper against a real tiny model host and batcher, with the registry faked (the store's
side is :mod:`adaptd.adapters.serving_port`, covered by the service tests): refused versions
are retried with backoff, a start on a broken active version falls back to an earlier one."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adaptd.errors import StoreError
from adaptd.metrics import new_metrics
from adaptd.serving.batcher import Batcher
from adaptd.serving.host import ModelHost
from adaptd.serving.swapper import RetrySettings, Swapper, retry_delay
from adaptd.storage.records import AdapterRecord
from tests.unit.serving.helpers import LABELS

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RETRY = RetrySettings(first_s=30.0, max_s=1800.0, poll_s=3600.0)


def record(version: str, path: Path, status: str = "active") -> AdapterRecord:
    return AdapterRecord(version=version, status=status, path=str(path), created=T0, promoted=T0)


@dataclass
class FakeRegistry:
    current: AdapterRecord | None = None
    earlier: list[AdapterRecord] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    down: bool = False

    def active(self) -> AdapterRecord | None:
        if self.down:
            raise StoreError("connection refused")
        return self.current

    def fallbacks(self) -> list[AdapterRecord]:
        return list(self.earlier)

    def files(self, record: AdapterRecord) -> Path:
        return Path(record.path)

    def promote(self, version: str, reason: str) -> AdapterRecord:
        raise NotImplementedError

    def rollback(self, reason: str) -> AdapterRecord:
        raise NotImplementedError

    def event(self, kind: str, message: str, **details: Any) -> None:
        self.events.append((kind, message))


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def parts(tiny_base: Path) -> Any:
    host = ModelHost(base=str(tiny_base), labels=LABELS, max_length=16, threads=1)
    metrics = new_metrics()
    on_swap: list[Swapper] = []  # the swapper under test, once made (the daemon's wiring)
    batcher = Batcher(
        host,
        metrics,
        max_batch=4,
        max_wait_ms=0.5,
        queue_size=64,
        on_swap=lambda swap: on_swap[0].on_swap(swap) if on_swap else None,
    )
    batcher.start()
    yield host, batcher, metrics, on_swap
    batcher.stop(5.0)


def swapper_for(
    parts: Any, registry: FakeRegistry, clock: Clock, probes: list[str | None]
) -> Swapper:
    host, batcher, metrics, on_swap = parts
    swapper = Swapper(
        registry,
        metrics.adapters,
        host=host,
        batcher=batcher,
        settings=lambda: RETRY,
        on_probe=probes.append,
        monotonic=clock,
    )
    on_swap.append(swapper)
    return swapper


def test_backoff_doubles_up_to_the_cap() -> None:
    delays = [retry_delay(n, first_s=30, max_s=1800) for n in range(1, 9)]
    assert delays == [30, 60, 120, 240, 480, 960, 1800, 1800]


def test_a_refused_version_is_retried_with_backoff_and_served_once_it_builds(
    parts: Any, adapter_a: Path, tmp_path: Path
) -> None:
    host, _, metrics, _ = parts
    broken = tmp_path / "v2"  # the files are not there yet (a slow copy, a network volume)
    registry = FakeRegistry(current=record("v2", broken))
    clock, probes = Clock(), []
    swapper = swapper_for(parts, registry, clock, probes)
    assert swapper.sync() is None
    assert "v2" in swapper.refused and swapper.last_refusal() is not None
    assert swapper.status()["retries"]["v2"] == {"attempts": 1, "next_in_s": 30.0}
    # Polls within the backoff do not rebuild.
    clock.t += 29
    swapper.sync()
    assert swapper.status()["retries"]["v2"]["attempts"] == 1
    clock.t += 2
    swapper.sync()
    assert swapper.status()["retries"]["v2"] == {"attempts": 2, "next_in_s": 60.0}
    assert metrics.registry.get_sample_value("adaptd_adapter_swap_failures_total") == 2
    # The files arrive; the next try after the backoff serves them.
    shutil.copytree(adapter_a, broken)
    clock.t += 61
    assert swapper.request_swap(timeout=10) == "v2"
    assert host.active is not None and host.active.version == "v2"
    assert swapper.refused == {} and probes == [None] * 4


def test_a_broken_active_version_at_start_falls_back_to_the_last_good_one(
    parts: Any, adapter_a: Path, adapter_b: Path, tmp_path: Path
) -> None:
    host, _, metrics, _ = parts
    registry = FakeRegistry(
        current=record("v3", tmp_path / "gone"),
        earlier=[
            record("v2", tmp_path / "also-gone", "retired"),
            record("v1", adapter_a, "retired"),
            record("v0", adapter_b, "rolled_back"),
        ],
    )
    clock = Clock()
    swapper = swapper_for(parts, registry, clock, [])
    assert swapper.request_swap(timeout=10) == "v1"
    assert host.active is not None and host.active.version == "v1"
    assert swapper.status()["fallback"] == {"serving": "v1", "instead_of": "v3"}
    assert set(swapper.refused) == {"v3", "v2"}
    assert metrics.registry.get_sample_value("adaptd_adapter_fallback") == 1
    assert metrics.registry.get_sample_value("adaptd_adapter_fallbacks_total") == 1
    assert [kind for kind, _ in registry.events] == ["adapter_fallback"]
    assert "v1" in registry.events[0][1] and "v3" in registry.events[0][1]
    # Later polls keep serving the fallback without a new event ...
    clock.t += 10
    assert swapper.sync() == "v1"
    assert len(registry.events) == 1
    # ... until the operator makes a loadable version active: the fallback is over.
    registry.current = record("v0", adapter_b)
    assert swapper.request_swap(timeout=10) == "v0"
    assert swapper.status()["fallback"] is None
    assert metrics.registry.get_sample_value("adaptd_adapter_fallback") == 0


def test_a_version_that_fails_after_serving_keeps_the_served_one(
    parts: Any, adapter_a: Path, tmp_path: Path
) -> None:
    host, _, _, _ = parts
    registry = FakeRegistry(current=record("v1", adapter_a))
    swapper = swapper_for(parts, registry, Clock(), [])
    assert swapper.request_swap(timeout=10) == "v1"
    registry.current = record("v2", tmp_path / "missing")
    assert swapper.sync() == "v1"
    assert host.active is not None and host.active.version == "v1"
    assert swapper.status()["fallback"] == {"serving": "v1", "instead_of": "v2"}


def test_a_store_outage_is_reported_and_changes_nothing_served(parts: Any, adapter_a: Path) -> None:
    host, _, _, _ = parts
    registry = FakeRegistry(current=record("v1", adapter_a))
    probes: list[str | None] = []
    swapper = swapper_for(parts, registry, Clock(), probes)
    swapper.request_swap(timeout=10)
    registry.down = True
    assert swapper.sync() == "v1"
    assert probes == [None, "connection refused"]
    assert host.active is not None and host.active.version == "v1"


def test_a_swap_that_drops_a_large_model_hands_its_memory_back(
    parts: Any, adapter_a: Path, adapter_b: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a drop of at least RELEASE_MIN_BYTES is worth a malloc_trim (it stalls the batcher)."""
    trims: list[bool] = []
    monkeypatch.setattr("adaptd.serving.swapper.release_freed_memory", lambda: trims.append(True))
    registry = FakeRegistry(current=record("v1", adapter_a))
    swapper = swapper_for(parts, registry, Clock(), [])
    for n, adapter in enumerate((adapter_a, adapter_b, adapter_a, adapter_b), start=1):
        registry.current = record(f"v{n}", adapter)
        swapper.request_swap(timeout=10)
    assert trims == [], "versions sharing the base own too little to be worth a trim"
    monkeypatch.setattr("adaptd.serving.memory.RELEASE_MIN_BYTES", 1)
    registry.current = record("v5", adapter_a)
    swapper.request_swap(timeout=10)  # drops v3
    assert len(trims) == 1
    swapper.request_swap(timeout=10)  # nothing swapped: nothing to hand back
    assert len(trims) == 1
