"""The adapter files kept in the store: one row per (version, file name) with its bytes and sha256.

Rows are written once per version and never changed: a version is the hash of its files, so
the same version always means the same bytes, and a second writer of it has nothing to add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from adaptd.storage import tables as t


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredBlob:
    name: str
    size: int
    sha256: str
    data: bytes


def put_files(engine: Engine, version: str, blobs: Sequence[StoredBlob]) -> bool:
    """Store the files of ``version`` in one transaction; False when they were already there."""
    rows = [
        {"version": version, "name": b.name, "size": b.size, "sha256": b.sha256, "data": b.data}
        for b in blobs
    ]
    try:
        with engine.begin() as conn:
            present = conn.execute(
                select(func.count())
                .select_from(t.adapter_files)
                .where(t.adapter_files.c.version == version)
            ).scalar_one()
            if present:
                return False
            conn.execute(insert(t.adapter_files), rows)
    except IntegrityError:
        return False  # another process stored the same version between our check and insert
    return True


def get_files(engine: Engine, version: str) -> list[StoredBlob]:
    """The stored files of ``version`` in name order (empty when none were stored)."""
    query = (
        select(t.adapter_files)
        .where(t.adapter_files.c.version == version)
        .order_by(t.adapter_files.c.name)
    )
    with engine.connect() as conn:
        return [
            StoredBlob(name=r.name, size=r.size, sha256=r.sha256, data=bytes(r.data))
            for r in conn.execute(query)
        ]


def stored_size(engine: Engine, version: str) -> int | None:
    """Total bytes stored for ``version``; None when nothing is."""
    query = select(func.count(), func.sum(t.adapter_files.c.size)).where(
        t.adapter_files.c.version == version
    )
    with engine.connect() as conn:
        count, total = conn.execute(query).one()
    return int(total) if count else None


def delete_files(engine: Engine, version: str) -> None:
    with engine.begin() as conn:
        conn.execute(delete(t.adapter_files).where(t.adapter_files.c.version == version))
