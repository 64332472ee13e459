"""Version directories under ``<state_dir>/adapters/<version>/``, written so that a crash or a
concurrent import never leaves a half-written version where a daemon could load it.

A version's directory appears by a single ``rename`` of a fully written, fsynced temporary
directory on the same filesystem, and its contents are re-hashed before the rename: the name of
the directory is then a promise about its bytes that readers can check with :func:`verify`.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from adaptd.adapters.layout import adapter_files, content_hash
from adaptd.errors import ConfigError, IncompatibleAdapterError, StoreError

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredFile:
    name: str
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_durably(src: Path, dst: Path) -> None:
    with src.open("rb") as fin, dst.open("wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


def verify(path: Path, version: str) -> None:
    """Raise :class:`IncompatibleAdapterError` unless ``path`` holds exactly ``version``'s files."""
    if not path.is_dir():
        raise IncompatibleAdapterError(f"adapter {version[:12]}: files missing: {path}")
    actual = content_hash(path)
    if actual != version:
        raise IncompatibleAdapterError(
            f"adapter {version[:12]}: files at {path} are corrupted "
            f"(content hash {actual[:12]}, expected {version[:12]})"
        )


def is_intact(path: Path, version: str) -> bool:
    try:
        verify(path, version)
    except IncompatibleAdapterError:
        return False
    return True


def stored_files(path: Path) -> list[StoredFile]:
    """The files of a stored version (empty when its directory is gone)."""
    if not path.is_dir():
        return []
    return [StoredFile(name=p.name, size=p.stat().st_size) for p in sorted(path.iterdir())]


def store(src_dir: Path, adapters_dir: Path, version: str) -> Path:
    """Copy the defining files of ``src_dir`` to ``adapters_dir/version`` atomically; a directory
    that already holds this version is kept, one that holds anything else is replaced."""
    dest = adapters_dir / version
    if is_intact(dest, version):
        return dest
    try:
        adapters_dir.mkdir(parents=True, exist_ok=True)
        tmp = adapters_dir / f".tmp-{version[:12]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as e:
        raise ConfigError(f"state_dir: cannot write adapters to {adapters_dir}: {e}") from e
    try:
        for path in adapter_files(src_dir):
            _copy_durably(path, tmp / path.name)
        _fsync_dir(tmp)
        # The source may have changed between hashing and copying; the copy is what counts.
        copied = content_hash(tmp)
        if copied != version:
            raise IncompatibleAdapterError(
                f"{src_dir}: changed while it was being imported (hash {copied[:12]}, "
                f"expected {version[:12]})"
            )
        _install(tmp, dest, version)
        _fsync_dir(adapters_dir)
    except OSError as e:
        # A full disk or an I/O error mid-copy: nothing was installed, the temporary copy goes.
        raise StoreError(f"cannot write adapter files to {adapters_dir}: {e}") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    logger.info("stored adapter %s in %s", version[:12], dest)
    return dest


def _install(tmp: Path, dest: Path, version: str) -> None:
    if is_intact(dest, version):
        return  # another process installed the same version meanwhile
    if dest.exists():
        # Damaged leftovers (or a crash mid-way through an older adaptd) are moved aside first:
        # rename over a non-empty directory fails, and a reader must never see a mix.
        trash = dest.with_name(f".trash-{version[:12]}-{uuid.uuid4().hex[:8]}")
        logger.warning("replacing damaged files of adapter %s in %s", version[:12], dest)
        dest.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    try:
        tmp.rename(dest)
    except OSError:
        # Another process installed the same version between our check and our rename.
        if not is_intact(dest, version):
            raise
