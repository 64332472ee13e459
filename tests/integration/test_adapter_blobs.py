"""Adapter files through the store: a host with its own state_dir builds any version from the
store's copy, verified by hash; damaged or missing copies are refused with a clear message."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from adaptd.adapters import blobs, registry
from adaptd.adapters.layout import content_hash
from adaptd.errors import IncompatibleAdapterError
from adaptd.modeling.base import BaseModelInfo, inspect_base
from adaptd.storage import adapter_files
from adaptd.storage import tables as t
from tests.unit.adapters.builders import LABELS, build_adapter, build_base, variant

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_base(tmp_path_factory.mktemp("base") / "bert")


@pytest.fixture(scope="module")
def base(tiny_base: Path) -> BaseModelInfo:
    return inspect_base(str(tiny_base), LABELS)


@pytest.fixture(scope="module")
def sources(tiny_base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("sources")
    first = build_adapter(tiny_base, root / "v0")
    return [first, variant(first, root / "v1", "v1")]


def import_on_a(engine, tmp_path, src, base, **kwargs):
    return registry.import_adapter(
        engine, tmp_path / "a" / "adapters", src, base=base, labels=LABELS, now=T0, **kwargs
    )


def test_another_host_materializes_the_stored_files_into_its_cache(engine, tmp_path, sources, base):
    record = import_on_a(engine, tmp_path, sources[0], base)
    stored = adapter_files.get_files(engine, record.version)
    assert {b.name for b in stored} >= {"adapter_config.json", "adapter_model.safetensors"}
    # Host A itself builds from its registry path.
    assert blobs.materialize(engine, record, tmp_path / "a" / "adapters") == Path(record.path)

    # Host B has its own state_dir and never saw A's disk.
    shutil.rmtree(tmp_path / "a")
    cache = tmp_path / "b" / "adapters"
    path = blobs.materialize(engine, record, cache)
    assert path == cache / record.version
    assert content_hash(path) == record.version
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging left behind
    # Second time: the cache, as is (the store is not needed any more).
    adapter_files.delete_files(engine, record.version)
    assert blobs.materialize(engine, record, cache) == path


def test_a_promotion_on_a_host_without_the_files_checks_the_stored_copy(
    engine, tmp_path, sources, base
):
    record = import_on_a(engine, tmp_path, sources[0], base)
    shutil.rmtree(tmp_path / "a")
    promoted = registry.promote(engine, record.version, T0, reason="from host b", base=base)
    assert promoted.status == "active"


def test_damaged_local_files_are_fetched_again_from_the_store(engine, tmp_path, sources, base):
    record = import_on_a(engine, tmp_path, sources[0], base)
    weights = Path(record.path) / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\x00")
    path = blobs.materialize(engine, record, tmp_path / "a" / "adapters")
    assert path == Path(record.path)
    assert content_hash(path) == record.version


def test_a_damaged_stored_file_is_refused_and_nothing_is_cached(engine, tmp_path, sources, base):
    record = import_on_a(engine, tmp_path, sources[1], base)
    shutil.rmtree(tmp_path / "a")
    with engine.begin() as conn:
        conn.execute(
            update(t.adapter_files)
            .where(
                t.adapter_files.c.version == record.version,
                t.adapter_files.c.name == "adapter_model.safetensors",
            )
            .values(data=b"not the weights")
        )
    cache = tmp_path / "b" / "adapters"
    with pytest.raises(IncompatibleAdapterError, match="adapter_model.safetensors in the store"):
        blobs.materialize(engine, record, cache)
    assert not (cache / record.version).exists()
    with pytest.raises(IncompatibleAdapterError, match="in the store is corrupted"):
        registry.promote(engine, record.version, T0, reason="try")


def test_a_file_name_that_would_leave_the_cache_is_refused(engine, tmp_path, sources, base):
    record = import_on_a(engine, tmp_path, sources[1], base)
    shutil.rmtree(tmp_path / "a")
    with engine.begin() as conn:
        conn.execute(
            update(t.adapter_files)
            .where(
                t.adapter_files.c.version == record.version,
                t.adapter_files.c.name == "adapter_config.json",
            )
            .values(name="../adapter_config.json")
        )
    with pytest.raises(IncompatibleAdapterError, match="bad file name"):
        blobs.materialize(engine, record, tmp_path / "b" / "adapters")
    assert not (tmp_path / "b" / "adapter_config.json").exists()


def test_an_adapter_over_the_size_limit_stays_local_and_other_hosts_are_told_why(
    engine, tmp_path, sources, base, caplog
):
    with caplog.at_level(logging.WARNING, logger="adaptd.adapters.blobs"):
        record = import_on_a(engine, tmp_path, sources[0], base, max_store_bytes=1000)
    assert "over store.adapter_max_bytes" in caplog.text
    assert adapter_files.stored_size(engine, record.version) is None
    assert blobs.materialize(engine, record, tmp_path / "a" / "adapters") == Path(record.path)
    shutil.rmtree(tmp_path / "a")
    with pytest.raises(IncompatibleAdapterError, match="files missing.*not in the store"):
        blobs.materialize(engine, record, tmp_path / "b" / "adapters")
    # Importing it again (the same content) with room for it puts the files in the store.
    again = import_on_a(engine, tmp_path, sources[0], base)
    assert again.version == record.version
    assert adapter_files.stored_size(engine, record.version) == sum(
        p.stat().st_size
        for p in Path(again.path).iterdir()
        if p.name in {b.name for b in adapter_files.get_files(engine, record.version)}
    )
