"""``adaptd report --out FILE.html``: Evidently's drift report for reference vs current."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from adaptd.cli.common import ConfigOption, load, open_store
from adaptd.errors import UsageError
from adaptd.monitoring.edges import build_windows
from adaptd.storage import repository


def report(
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the HTML report."),
    config: ConfigOption = None,
) -> None:
    """Write an Evidently HTML drift report: text descriptors, prediction columns, embeddings."""
    from adaptd.monitoring.evidently_report import window_report

    if not out.parent.is_dir():
        raise UsageError(f"--out: directory does not exist: {out.parent}")
    settings = load(config)
    engine = open_store(settings)
    try:
        active = repository.active_adapter(engine)
        version = active.version if active is not None else None
        reference, current = build_windows(
            engine,
            settings.monitors,
            version,
            [],
            datetime.now(UTC),
            labels=settings.model.labels,
            max_text_chars=settings.serving.max_text_chars,
        )
    finally:
        engine.dispose()
    summary = window_report(
        reference, current, out, components=settings.monitors.embedding_components
    )
    drifted = [c.column for c in summary.columns if c.drifted]
    print(
        f"wrote {out}: {len(drifted)} of {len(summary.columns)} columns drifted"
        + (f" ({', '.join(drifted)})" if drifted else "")
    )
