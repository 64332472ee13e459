"""The registry's operations: import a version, promote it, roll back, reject, read lineage.

A version is the content hash of its files (:func:`adaptd.adapters.layout.content_hash`). The
store holds one row per version with its status (candidate, active, retired, rolled_back,
rejected, failed) and lineage (parent, reason, data window); the files live in
``<adapters_dir>/<version>/`` of the importing host and, so that every other host can build
them, in the store (:mod:`adaptd.adapters.blobs`). Exactly one version is active; serving polls
the store for it, so a promotion made here (from the CLI, the control loop or another host)
reaches every daemon. Every change is also written as an event, so ``adaptd`` can always say
who changed what and why.

Nothing here reads the clock: ``now`` comes from the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from adaptd.adapters import blobs, files
from adaptd.adapters.layout import AdapterSummary, check_compatible, content_hash
from adaptd.errors import AdapterRefusedError, NotFoundError, UsageError
from adaptd.modeling.base import BaseModelInfo
from adaptd.storage import probations
from adaptd.storage import repository as repo
from adaptd.storage.records import AdapterRecord, Event

logger = logging.getLogger(__name__)

#: statuses a version can be registered with; "active" is reached only through promote/rollback
IMPORT_STATUSES = frozenset({"candidate", "rejected", "failed"})
#: statuses a promotion or rollback refuses unless forced
REFUSED_STATUSES = frozenset({"rejected", "failed"})
EVENT_KINDS = ("adapter_imported", "promoted", "rolled_back", "rejected", "validated")


def _event(
    engine: Engine, now: datetime, kind: str, source: str, message: str, **details: Any
) -> None:
    repo.add_events(
        engine, [Event(ts=now, kind=kind, source=source, message=message, details=details)]
    )
    logger.info("%s", message)


def import_adapter(
    engine: Engine,
    adapters_dir: Path,
    src_dir: Path,
    *,
    base: BaseModelInfo,
    labels: Sequence[str],
    now: datetime,
    parent: str | None = None,
    reason: str | None = None,
    data_window: dict[str, Any] | None = None,
    status: str = "candidate",
    metrics: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    base_module_names: Collection[str] | None = None,
    source: str = "registry",
    max_store_bytes: int = blobs.DEFAULT_MAX_BYTES,
) -> AdapterRecord:
    """Check ``src_dir`` against the base model and labels, copy its files into the registry
    (and into the store, up to ``max_store_bytes``) and record the version; importing the same
    content again returns the existing record.

    ``config`` is stored as given, plus ``adapter`` (the :class:`AdapterSummary`: rank, alpha,
    target modules, head shape) and ``imported_from`` (the source directory).
    """
    if status not in IMPORT_STATUSES:
        raise UsageError(
            f"cannot import an adapter with status {status!r} "
            f"(one of {sorted(IMPORT_STATUSES)}; activate it with promote)"
        )
    summary = check_compatible(src_dir, base, labels, base_module_names=base_module_names)
    version = content_hash(src_dir)
    existing = _find_exact(engine, version)
    if existing is not None:
        _restore_files(engine, existing, src_dir, adapters_dir, now, source)
        # A version registered before its files went to the store gets them now.
        blobs.put(engine, version, src_dir, max_bytes=max_store_bytes)
        return repo.get_adapter(engine, version)
    parent_version = repo.get_adapter(engine, parent).version if parent is not None else None

    path = files.store(src_dir, adapters_dir, version)
    # Files first, row second: a replica that sees the version can always fetch its files.
    blobs.put(engine, version, path, max_bytes=max_store_bytes)
    record = AdapterRecord(
        version=version,
        status=status,
        path=str(path),
        created=now,
        parent=parent_version,
        reason=reason,
        data_window=data_window,
        metrics=metrics,
        config={
            **(config or {}),
            "adapter": summary.as_dict(),
            "imported_from": str(src_dir.resolve()),
        },
    )
    try:
        stored = repo.add_adapter(engine, record)
    except IntegrityError:
        # Another process registered the same content between our lookup and our insert.
        return repo.get_adapter(engine, version)
    if stored is record:
        _event(
            engine,
            now,
            "adapter_imported",
            source,
            f"adapter {version[:12]} imported as {status}"
            + (f" from parent {parent_version[:12]}" if parent_version else "")
            + (f": {reason}" if reason else ""),
            version=version,
            parent=parent_version,
            status=status,
            reason=reason,
        )
    # What the store holds (JSON round-tripped), the same as any later show() returns.
    return repo.get_adapter(engine, version)


def _find_exact(engine: Engine, version: str) -> AdapterRecord | None:
    try:
        record = repo.get_adapter(engine, version)
    except NotFoundError:
        return None
    return record if record.version == version else None


def _restore_files(
    engine: Engine,
    record: AdapterRecord,
    src_dir: Path,
    adapters_dir: Path,
    now: datetime,
    source: str,
) -> None:
    """A known version whose files were lost gets them back from the same content."""
    if files.is_intact(Path(record.path), record.version):
        return
    path = files.store(src_dir, adapters_dir, record.version)
    repo.set_adapter_fields(engine, record.version, path=str(path))
    _event(
        engine,
        now,
        "adapter_imported",
        source,
        f"adapter {record.version[:12]}: missing or damaged files restored in {path}",
        version=record.version,
        restored=True,
    )


def _check_promotable(
    engine: Engine,
    record: AdapterRecord,
    *,
    force: bool,
    base: BaseModelInfo | None,
    base_module_names: Collection[str] | None,
    action: str,
) -> None:
    if record.status in REFUSED_STATUSES and not force:
        raise AdapterRefusedError(
            f"adapter {record.version[:12]} is {record.status}; refusing to {action} it "
            "(force to override)"
        )
    # Re-hashed (from the store when this host did not import it), so a promotion never
    # activates files that no replica could build.
    with blobs.verified_dir(engine, record) as path:
        if base is not None:
            check_compatible(path, base, base.labels, base_module_names=base_module_names)


def promote(
    engine: Engine,
    version: str,
    now: datetime,
    *,
    reason: str,
    force: bool = False,
    verdict: dict[str, Any] | None = None,
    base: BaseModelInfo | None = None,
    base_module_names: Collection[str] | None = None,
    source: str = "registry",
    expect_active: str | None = None,
) -> AdapterRecord:
    """Make ``version`` (or a unique prefix) the single active adapter; the one it replaces
    becomes ``retired``. Files are re-hashed first, and with ``base`` re-checked for
    compatibility (the label set in config may have changed since import). Promoting the active
    version changes nothing. With ``expect_active``, only if that version is still the active
    one (:class:`ActiveChangedError` otherwise): a retrain's candidate was judged against it.
    ``verdict`` (the validation that justified it) is stored with it.
    A promotion that replaces a version puts the new one on probation against it, whatever
    promoted it (:mod:`adaptd.retraining.probation` judges it).
    """
    record = repo.get_adapter(engine, version)
    _check_promotable(
        engine,
        record,
        force=force,
        base=base,
        base_module_names=base_module_names,
        action="promote",
    )
    if verdict is not None:
        repo.set_adapter_fields(engine, record.version, verdict=verdict)
    if record.status == "active":
        return repo.get_adapter(engine, record.version)

    def on_probation(conn: Connection, replaced: str | None) -> None:
        # In the promotion's transaction: no promotion, whoever made it, goes without probation.
        if replaced is not None:
            probations.start(
                conn, version=record.version, previous=replaced, now=now, source=source
            )

    previous = repo.switch_active_adapter(
        engine,
        record.version,
        now,
        previous_status="retired",
        expect_active=expect_active,
        then=on_probation,
    )
    _event(
        engine,
        now,
        "promoted",
        source,
        f"adapter {record.version[:12]} promoted"
        + (f", replacing {previous[:12]}" if previous else "")
        + f": {reason}",
        version=record.version,
        previous=previous,
        reason=reason,
        forced=force and record.status in REFUSED_STATUSES,
    )
    return repo.get_adapter(engine, record.version)


def rollback_target(engine: Engine, *, to: str | None = None) -> AdapterRecord:
    """The version a rollback would re-activate: ``to``, or the most recently promoted version
    that was replaced by a promotion (not one that was itself rolled back)."""
    active = repo.active_adapter(engine)
    if to is not None:
        target = repo.get_adapter(engine, to)
        if active is not None and target.version == active.version:
            raise AdapterRefusedError(f"adapter {target.version[:12]} is already active")
        if target.promoted is None:
            raise AdapterRefusedError(
                f"adapter {target.version[:12]} was never active; use promote to activate it"
            )
        return target
    retired = [
        (r.promoted, r.version, r)
        for r in repo.list_adapters(engine)
        if r.status == "retired" and r.promoted is not None
    ]
    if not retired:
        now_active = f" before {active.version[:12]}" if active is not None else ""
        raise AdapterRefusedError(f"nothing to roll back to: no version was active{now_active}")
    return max(retired, key=lambda item: (item[0], item[1]))[2]


def rollback(
    engine: Engine,
    now: datetime,
    *,
    reason: str,
    to: str | None = None,
    force: bool = False,
    base: BaseModelInfo | None = None,
    base_module_names: Collection[str] | None = None,
    source: str = "registry",
    expect_active: str | None = None,
) -> AdapterRecord:
    """Re-activate the previously active version (or ``to``); the version rolled back from
    becomes ``rolled_back``, so a second rollback goes further back instead of undoing the first.
    With ``expect_active``, only if that version is still active (:class:`ActiveChangedError`).
    """
    target = rollback_target(engine, to=to)
    _check_promotable(
        engine,
        target,
        force=force,
        base=base,
        base_module_names=base_module_names,
        action="roll back to",
    )
    previous = repo.switch_active_adapter(
        engine, target.version, now, previous_status="rolled_back", expect_active=expect_active
    )
    _event(
        engine,
        now,
        "rolled_back",
        source,
        f"rolled back to adapter {target.version[:12]}"
        + (f" from {previous[:12]}" if previous else "")
        + f": {reason}",
        version=target.version,
        previous=previous,
        reason=reason,
    )
    return repo.get_adapter(engine, target.version)


def reject(
    engine: Engine,
    version: str,
    now: datetime,
    *,
    verdict: dict[str, Any],
    reason: str,
    source: str = "registry",
) -> None:
    """Mark a candidate ``rejected`` with the verdict that failed it (shown by adapters show)."""
    record = repo.get_adapter(engine, version)
    if record.status == "active":
        raise AdapterRefusedError(
            f"adapter {record.version[:12]} is active; roll back or promote another version "
            "before rejecting it"
        )
    repo.set_adapter_fields(engine, record.version, status="rejected", verdict=verdict)
    _event(
        engine,
        now,
        "rejected",
        source,
        f"adapter {record.version[:12]} rejected: {reason}",
        version=record.version,
        reason=reason,
    )


def record_verdict(
    engine: Engine,
    version: str,
    now: datetime,
    *,
    verdict: dict[str, Any],
    source: str = "registry",
) -> AdapterRecord:
    """Store a validation verdict without changing status (a passed candidate that waits for an
    operator's approval)."""
    record = repo.get_adapter(engine, version)
    repo.set_adapter_fields(engine, record.version, verdict=verdict)
    _event(
        engine,
        now,
        "validated",
        source,
        f"adapter {record.version[:12]} validated",
        version=record.version,
    )
    return repo.get_adapter(engine, record.version)


def list_adapters(engine: Engine) -> list[AdapterRecord]:
    """Every version, oldest first."""
    return repo.list_adapters(engine)


def show(engine: Engine, version: str) -> AdapterRecord:
    """One version by its id or a unique prefix; :class:`NotFoundError` names it otherwise."""
    return repo.get_adapter(engine, version)


def active(engine: Engine) -> AdapterRecord | None:
    return repo.active_adapter(engine)


def lineage(engine: Engine, version: str) -> list[AdapterRecord]:
    """``version`` and its ancestors, newest first; stops at a parent that is not registered."""
    chain = [repo.get_adapter(engine, version)]
    seen = {chain[0].version}
    while (parent := chain[-1].parent) is not None and parent not in seen:
        found = _find_exact(engine, parent)
        if found is None:
            break
        chain.append(found)
        seen.add(found.version)
    return chain


def history(engine: Engine, version: str, *, limit: int = 1000) -> list[Event]:
    """The registry events that name ``version`` (as subject or as the version replaced)."""
    return [
        e
        for e in repo.list_events(engine, kinds=EVENT_KINDS, limit=limit)
        if e.details and version in (e.details.get("version"), e.details.get("previous"))
    ]


def recorded_summary(record: AdapterRecord) -> AdapterSummary | None:
    """The summary recorded at import, if the record carries one."""
    data = (record.config or {}).get("adapter")
    if not isinstance(data, dict):
        return None
    fields: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v
        for k, v in data.items()
        if k in AdapterSummary.__dataclass_fields__
    }
    try:
        return AdapterSummary(**fields)
    except TypeError:
        return None
