"""``adaptd adapters import|list|show|promote|rollback``: the registry from the command line.

Promotions made here reach a running daemon through the store (it polls the active version), so
operators need neither the HTTP API nor a restart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
import yaml
from sqlalchemy import Engine

from adaptd.adapters import files, registry
from adaptd.cli.common import ConfigOption, JsonOption, emit_json, load, open_store
from adaptd.config import Settings, ensure_state_dir
from adaptd.modeling.base import BaseModelInfo, base_module_shapes, inspect_base, resolve_base
from adaptd.storage.records import AdapterRecord

app = typer.Typer(
    help="Register, inspect, promote and roll back adapter versions.", no_args_is_help=True
)

ReasonOption = typer.Option(None, "--reason", help="Why; recorded in the lineage and the event.")
ForceOption = typer.Option(
    False, "--force", help="Also activate a version that validation rejected or that failed."
)
#: metrics shown first in the list, when a version recorded them
_KEY_METRICS = ("accuracy", "macro_f1", "f1", "recent_accuracy", "golden_accuracy", "loss")


def _now() -> datetime:
    return datetime.now(UTC)


def _base(settings: Settings) -> tuple[BaseModelInfo, dict[str, tuple[int, ...]]]:
    """The base model's description and module shapes, read without loading its weights."""
    path = resolve_base(settings.model.base)
    labels = settings.model.labels
    pooling = settings.model.pooling
    return (
        inspect_base(path, labels, pooling=pooling),
        base_module_shapes(path, labels, pooling=pooling),
    )


@contextmanager
def _opened(config: Path | None) -> Iterator[tuple[Settings, Engine]]:
    """Settings and a reachable store whose connections are closed when the command ends (an
    embedding process, or a test, must not inherit open PostgreSQL connections)."""
    settings = load(config)
    engine = open_store(settings)
    try:
        yield settings, engine
    finally:
        engine.dispose()


@app.command("import")
def import_(
    directory: Path = typer.Argument(..., help="A PEFT LoRA adapter directory."),
    reason: str | None = ReasonOption,
    parent: str | None = typer.Option(
        None, "--parent", help="The registered version this adapter was trained from."
    ),
    promote: bool = typer.Option(False, "--promote", help="Make it the active adapter at once."),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register an adapter trained anywhere; prints its version.

    The directory is checked against the base model and the configured labels first; the version
    is the content hash of its files, so importing the same adapter twice is harmless.
    """
    with _opened(config) as (settings, engine):
        ensure_state_dir(settings)
        base, modules = _base(settings)
        record = registry.import_adapter(
            engine,
            settings.adapters_dir,
            directory,
            base=base,
            labels=settings.model.labels,
            now=_now(),
            parent=parent,
            reason=reason or f"imported from {directory}",
            base_module_names=modules,
            source="cli",
            max_store_bytes=settings.store.adapter_max_bytes,
        )
        if promote:
            record = registry.promote(
                engine,
                record.version,
                _now(),
                reason=reason or "promoted on import",
                base=base,
                base_module_names=modules,
                source="cli",
            )
        if as_json:
            emit_json(record)
        else:
            print(record.version)


def _key_metrics(metrics: Mapping[str, Any] | None, limit: int = 3) -> str:
    if not metrics:
        return ""
    numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    ordered = [k for k in _KEY_METRICS if k in numeric]
    ordered += sorted(k for k in numeric if k not in ordered)
    return " ".join(f"{k}={numeric[k]:.4g}" for k in ordered[:limit])


def _when(ts: datetime | None) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if ts is not None else "-"


def _short(text: str | None, width: int) -> str:
    text = (text or "-").replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command("list")
def list_(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Every registered version, oldest first, with status, lineage and key metrics."""
    with _opened(config) as (_, engine):
        records = registry.list_adapters(engine)
        if as_json:
            emit_json(records)
            return
        if not records:
            print("no adapters registered (adaptd adapters import DIR)")
            return
        rows = [("VERSION", "STATUS", "PARENT", "CREATED (UTC)", "REASON", "METRICS")]
        rows += [
            (
                r.version[:12],
                r.status,
                (r.parent or "-")[:12],
                _when(r.created),
                _short(r.reason, 40),
                _key_metrics(r.metrics),
            )
            for r in records
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
            print("  ".join([*cells, row[-1]]).rstrip())


def _document(engine: Engine, record: AdapterRecord) -> dict[str, Any]:
    path = Path(record.path)
    return {
        **asdict(record),
        "intact": files.is_intact(path, record.version),
        "files": [asdict(f) for f in files.stored_files(path)],
        "lineage": [
            {"version": r.version, "status": r.status, "created": r.created, "reason": r.reason}
            for r in registry.lineage(engine, record.version)
        ],
        "events": [
            {"ts": e.ts, "kind": e.kind, "source": e.source, "message": e.message}
            for e in registry.history(engine, record.version)
        ],
    }


def _yaml_block(value: Any) -> str:
    text = yaml.safe_dump(value, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return "".join(f"  {line}\n" for line in text.rstrip("\n").splitlines())


@app.command("show")
def show(
    version: str = typer.Argument(..., help="A version or a unique prefix of one."),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Everything about one version, its verdict and its lineage.

    Status, lineage chain, files (and whether they are intact), metrics, the full validation
    verdict with every gate's value, and the registry events that concern it.
    """
    with _opened(config) as (_, engine):
        document = _document(engine, registry.show(engine, version))
        if as_json:
            emit_json(document)
            return
        print(f"version:  {document['version']}")
        print(f"status:   {document['status']}")
        print(f"created:  {_when(document['created'])}")
        print(f"promoted: {_when(document['promoted'])}")
        print(f"reason:   {document['reason'] or '-'}")
        print(f"path:     {document['path']} ({'intact' if document['intact'] else 'DAMAGED'})")
        print("files:")
        for f in document["files"] or [{"name": "(none: the directory is missing)", "size": 0}]:
            print(f"  {f['name']}  {f['size']} bytes")
        print("lineage (newest first):")
        for link in document["lineage"]:
            print(f"  {link['version'][:12]}  {link['status']:<11}  {_short(link['reason'], 60)}")
        for key in ("data_window", "metrics", "verdict", "config"):
            if document[key]:
                print(f"{key}:")
                print(_yaml_block(document[key]), end="")
            else:
                print(f"{key}: -")
        print("events:")
        for e in document["events"]:
            print(f"  {_when(e['ts'])}  {e['kind']:<16}  {e['message']}")


@app.command("promote")
def promote(
    version: str = typer.Argument(..., help="A version or a unique prefix of one."),
    reason: str | None = ReasonOption,
    force: bool = ForceOption,
    config: ConfigOption = None,
) -> None:
    """Make VERSION the active adapter; running daemons pick it up by polling the store."""
    with _opened(config) as (settings, engine):
        base, modules = _base(settings)
        before = registry.active(engine)
        record = registry.promote(
            engine,
            version,
            _now(),
            reason=reason or "manual promotion (CLI)",
            force=force,
            base=base,
            base_module_names=modules,
            source="cli",
        )
        if before is not None and before.version == record.version:
            print(f"{record.version} is already active")
        else:
            replaced = f" (replacing {before.version[:12]})" if before is not None else ""
            print(f"promoted {record.version}{replaced}")


@app.command("rollback")
def rollback(
    to: str | None = typer.Option(
        None, "--to", help="A formerly active version (default: the one active before this)."
    ),
    reason: str | None = ReasonOption,
    force: bool = ForceOption,
    config: ConfigOption = None,
) -> None:
    """Re-activate the previously active version (or --to VERSION)."""
    with _opened(config) as (settings, engine):
        base, modules = _base(settings)
        before = registry.active(engine)
        record = registry.rollback(
            engine,
            _now(),
            reason=reason or "manual rollback (CLI)",
            to=to,
            force=force,
            base=base,
            base_module_names=modules,
            source="cli",
        )
        replaced = f" from {before.version[:12]}" if before is not None else ""
        print(f"rolled back to {record.version}{replaced}")
