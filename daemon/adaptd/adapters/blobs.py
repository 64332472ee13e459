"""Adapter files that travel through the store, so every host can build every version.

The registry keeps a version's files in ``<state_dir>/adapters/<version>/`` on the host that
imported it, and (when they fit in ``store.adapter_max_bytes``) in the store's
``adapter_files`` table. Any other host (a serving replica, a standby controller, each with its
own ``state_dir``) calls :func:`materialize`: the files are fetched once into its own
``<state_dir>/adapters/<version>/``, which is then a cache keyed by content hash, and every
byte is checked twice before anything is built from it: each file against its sha256, the
directory against the version (which *is* the content hash). A damaged cache is re-fetched.

The store, not an object store: the adapters adaptd trains are LoRA weights plus a classifier
head (about 1 MB for MiniLM at r=8, tens of MB for a 1B base), well within what a PostgreSQL
``bytea`` holds, and every host already has the store's credentials. An object store (fsspec)
would add a second system to secure and reach for no gain at these sizes.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from sqlalchemy import Engine

from adaptd.adapters import files
from adaptd.adapters.layout import adapter_files
from adaptd.errors import IncompatibleAdapterError, StoreError
from adaptd.storage import adapter_files as stored
from adaptd.storage.records import AdapterRecord
from adaptd.storage.settings import DEFAULT_ADAPTER_MAX_BYTES

logger = logging.getLogger(__name__)

#: ``store.adapter_max_bytes`` unless the caller passes the configured value
DEFAULT_MAX_BYTES = DEFAULT_ADAPTER_MAX_BYTES


def put(engine: Engine, version: str, src_dir: Path, *, max_bytes: int) -> bool:
    """Copy the defining files of ``src_dir`` (which hash to ``version``) into the store.
    Returns False, with a warning, when they are over ``max_bytes``: that version can then be
    built only on hosts that see ``src_dir``'s copy in the registry path."""
    paths = adapter_files(src_dir)
    total = sum(p.stat().st_size for p in paths)
    if total > max_bytes:
        logger.warning(
            "adapter %s: %d bytes is over store.adapter_max_bytes (%d); its files are not put "
            "in the store, so only hosts that share %s can serve it",
            version[:12],
            total,
            max_bytes,
            src_dir,
        )
        return False
    blobs = []
    for path in paths:
        data = path.read_bytes()
        blobs.append(
            stored.StoredBlob(
                name=path.name, size=len(data), sha256=hashlib.sha256(data).hexdigest(), data=data
            )
        )
    return stored.put_files(engine, version, blobs)


def materialize(engine: Engine, record: AdapterRecord, cache_dir: Path) -> Path:
    """A local directory that holds exactly ``record``'s files, verified: ``cache_dir/<version>``
    (on the importing host that is the registry path itself), fetched from the store when
    missing or damaged. ``record.path`` names a directory on the host that imported the version;
    it is used only for a version the store has no files of (over the size limit), and only
    if what is there hashes to the version."""
    version = record.version
    cached = cache_dir / version
    if files.is_intact(cached, version):
        return cached
    if stored.stored_size(engine, version) is None and files.is_intact(Path(record.path), version):
        return Path(record.path)
    path = _fetch(engine, record, cache_dir)
    logger.info("adapter %s fetched from the store into %s", version[:12], path)
    return path


@contextmanager
def verified_dir(engine: Engine, record: AdapterRecord) -> Iterator[Path]:
    """``record``'s files, verified, for the length of the block: the registry path when this
    host has them, else a temporary copy from the store (a promotion made on a host that did
    not import the version checks the same bytes every replica will build)."""
    local = Path(record.path)
    if files.is_intact(local, record.version):
        yield local
        return
    with tempfile.TemporaryDirectory(prefix="adaptd-adapter-") as tmp:
        yield _fetch(engine, record, Path(tmp))


def _fetch(engine: Engine, record: AdapterRecord, parent: Path) -> Path:
    """Write the stored files of ``record`` to ``parent/<version>`` after checking each file's
    sha256, then the whole against the version; raise naming what is missing or damaged."""
    version = record.version
    blobs = stored.get_files(engine, version)
    if not blobs:
        try:
            files.verify(Path(record.path), version)
            local = f"adapter {version[:12]}: files missing: {record.path}"
        except IncompatibleAdapterError as e:  # says whether they are missing or damaged
            local = str(e)
        raise IncompatibleAdapterError(
            f"{local}; and they are not in the store (imported over store.adapter_max_bytes, "
            "or by an adaptd that did not store files): import the directory again"
        )
    for blob in blobs:
        actual = hashlib.sha256(blob.data).hexdigest()
        if len(blob.data) != blob.size or actual != blob.sha256:
            raise IncompatibleAdapterError(
                f"adapter {version[:12]}: file {blob.name} in the store is corrupted "
                f"(sha256 {actual[:12]}, expected {blob.sha256[:12]})"
            )
        if Path(blob.name).name != blob.name or blob.name.startswith("."):
            # A name read from the store must never write outside the staging directory.
            raise IncompatibleAdapterError(
                f"adapter {version[:12]}: bad file name {blob.name!r} in the store"
            )
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = parent / f".tmp-fetch-{version[:12]}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
    except OSError as e:
        raise StoreError(f"cannot write adapter files to {parent}: {e}") from e
    try:
        for blob in blobs:
            (staging / blob.name).write_bytes(blob.data)
        # store() re-hashes the copy against the version before it becomes visible.
        return files.store(staging, parent, version)
    except OSError as e:
        raise StoreError(f"cannot write adapter files to {parent}: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def localized(engine: Engine, record: AdapterRecord, cache_dir: Path) -> AdapterRecord:
    """``record`` with ``path`` pointing at a verified local copy (see :func:`materialize`)."""
    path = materialize(engine, record, cache_dir)
    return record if str(path) == record.path else replace(record, path=str(path))
