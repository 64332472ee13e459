from __future__ import annotations

import shutil

import pytest

from adaptd.adapters import files
from adaptd.adapters.layout import content_hash
from adaptd.errors import IncompatibleAdapterError


def test_store_copies_only_the_defining_files_under_the_version(adapter, tmp_path):
    (adapter / "README.md").write_text("model card")
    version = content_hash(adapter)
    dest = files.store(adapter, tmp_path / "adapters", version)
    assert dest == tmp_path / "adapters" / version
    assert sorted(p.name for p in dest.iterdir()) == [
        "adaptd.json",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert content_hash(dest) == version
    # No temporary directories are left behind.
    assert [p.name for p in (tmp_path / "adapters").iterdir()] == [version]


def test_store_twice_keeps_the_first_copy(adapter, tmp_path):
    version = content_hash(adapter)
    dest = files.store(adapter, tmp_path / "adapters", version)
    inode = (dest / "adapter_model.safetensors").stat().st_ino
    files.store(adapter, tmp_path / "adapters", version)
    assert (dest / "adapter_model.safetensors").stat().st_ino == inode


def test_store_replaces_a_damaged_directory_of_the_same_version(adapter, tmp_path):
    version = content_hash(adapter)
    dest = files.store(adapter, tmp_path / "adapters", version)
    (dest / "adapter_model.safetensors").write_bytes(b"damaged")
    (dest / "stray").write_text("x")
    files.store(adapter, tmp_path / "adapters", version)
    files.verify(dest, version)
    assert not (dest / "stray").exists()
    assert [p.name for p in (tmp_path / "adapters").iterdir()] == [version]


def test_store_refuses_a_source_that_does_not_hash_to_the_version(adapter, tmp_path):
    """What happens when the source changes between hashing and copying."""
    with pytest.raises(IncompatibleAdapterError, match="changed while it was being imported"):
        files.store(adapter, tmp_path / "adapters", "0" * 64)
    assert list((tmp_path / "adapters").iterdir()) == []


def test_verify_names_missing_and_corrupted_files(adapter, tmp_path):
    version = content_hash(adapter)
    dest = files.store(adapter, tmp_path / "adapters", version)
    files.verify(dest, version)
    assert files.is_intact(dest, version)
    config = dest / "adapter_config.json"
    config.write_text(config.read_text().replace('"r": 4', '"r": 5'))
    with pytest.raises(IncompatibleAdapterError, match="are corrupted"):
        files.verify(dest, version)
    shutil.rmtree(dest)
    with pytest.raises(IncompatibleAdapterError, match="files missing"):
        files.verify(dest, version)
    assert files.stored_files(dest) == []


def test_stored_files_lists_names_and_sizes(adapter, tmp_path):
    version = content_hash(adapter)
    dest = files.store(adapter, tmp_path / "adapters", version)
    listed = {f.name: f.size for f in files.stored_files(dest)}
    assert (
        listed["adapter_model.safetensors"]
        == (adapter / "adapter_model.safetensors").stat().st_size
    )


def test_an_unwritable_adapters_dir_is_a_config_error(adapter, tmp_path):
    from adaptd.errors import ConfigError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write adapters"):
        files.store(adapter, blocker / "adapters", content_hash(adapter))


def test_a_full_disk_mid_copy_leaves_nothing_behind(adapter, tmp_path, monkeypatch):
    import errno

    from adaptd.errors import StoreError

    def full(src, dst):
        dst.write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files, "_copy_durably", full)
    with pytest.raises(StoreError, match="No space left on device"):
        files.store(adapter, tmp_path / "adapters", content_hash(adapter))
    assert list((tmp_path / "adapters").iterdir()) == []
