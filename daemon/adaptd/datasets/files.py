"""Users' own labelled or unlabelled data: CSV, JSONL or Parquet with a text column, an optional
label column, optional attribute columns and an optional timestamp column."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptd.datasets.records import Example
from adaptd.errors import DatasetError


def _rows(path: Path) -> Iterable[dict[str, Any]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            yield from csv.DictReader(f)
    elif suffix in {".jsonl", ".ndjson"}:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DatasetError(f"{path}:{number}: invalid JSON: {e.msg}") from e
                if not isinstance(row, dict):
                    raise DatasetError(f"{path}:{number}: each line must be a JSON object")
                yield row
    elif suffix == ".parquet":
        import pandas as pd

        yield from pd.read_parquet(path).to_dict(orient="records")
    else:
        raise DatasetError(
            f"{path}: unsupported file type {suffix!r} (use .csv, .jsonl or .parquet)"
        )


def _timestamp(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError as e:
        raise DatasetError(f"{where}: timestamp {value!r} is not ISO 8601") from e
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_examples(
    path: Path,
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    attribute_columns: Sequence[str] = (),
    timestamp_column: str | None = None,
    labels: Sequence[str] | None = None,
    require_labels: bool = False,
) -> list[Example]:
    """Read examples; every bad row is an error naming the file, row and column."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found")
    out: list[Example] = []
    try:
        for number, row in enumerate(_rows(path), start=1):
            where = f"{path}: row {number}"
            text = row.get(text_column)
            if not isinstance(text, str) or not text.strip():
                raise DatasetError(f"{where}: column {text_column!r} is missing or empty")
            label = row.get(label_column) if label_column else None
            label = None if label in (None, "") else str(label)
            if label is None and require_labels:
                raise DatasetError(f"{where}: column {label_column!r} is missing or empty")
            if label is not None and labels is not None and label not in labels:
                raise DatasetError(f"{where}: label {label!r} is not one of {list(labels)}")
            attributes = {c: str(row[c]) for c in attribute_columns if row.get(c) not in (None, "")}
            ts = _timestamp(row.get(timestamp_column), where) if timestamp_column else None
            out.append(Example(text=text, label=label, attributes=attributes, timestamp=ts))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot read: {e}") from e
    if not out:
        raise DatasetError(f"{path}: no rows")
    return out
