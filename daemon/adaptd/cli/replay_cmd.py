from __future__ import annotations

from pathlib import Path

import typer

from adaptd.cli.common import ConfigOption, JsonOption, emit_json, load
from adaptd.datasets.files import read_examples
from adaptd.demo.traffic import replay as replay_examples


def replay(
    file: Path = typer.Argument(..., help="CSV, JSONL or Parquet with a text column."),
    url: str | None = typer.Option(
        None, help="Daemon base URL (default: server.host/port from the config)."
    ),
    text_column: str = typer.Option("text", help="Column holding the text."),
    label_column: str = typer.Option("label", help="Column holding the true label, if any."),
    attribute: list[str] = typer.Option(
        [], "--attribute", "-a", help="Column sent as a request attribute (repeatable)."
    ),
    feedback: bool = typer.Option(True, help="Send the labels as feedback after predicting."),
    batch_size: int = typer.Option(16, min=1, help="Texts per predict request."),
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a file's texts to a running daemon (and their labels as feedback)."""
    settings = load(config)
    examples = read_examples(
        file,
        text_column=text_column,
        label_column=label_column,
        attribute_columns=attribute,
        labels=settings.model.labels,
    )
    base = url or f"http://{settings.server.host}:{settings.server.port}"
    token = settings.server.feedback_secret() if feedback else None
    stats = replay_examples(
        base, examples, batch_size=batch_size, send_feedback=feedback, feedback_token=token
    )
    summary = {
        "sent": stats.sent,
        "labelled": stats.labelled,
        "feedback_accepted": stats.feedback,
        "accuracy": stats.accuracy,
        "by_adapter": stats.by_adapter,
        "retries_after_503": stats.retries,
    }
    if as_json:
        emit_json(summary)
        return
    accuracy = f"{stats.accuracy:.3f}" if stats.accuracy is not None else "n/a"
    print(f"sent {stats.sent} texts, {stats.feedback} labels accepted, accuracy {accuracy}")
