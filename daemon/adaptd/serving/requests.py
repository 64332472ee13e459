"""Request bodies: parsed and checked by hand into our own values, so every bad input gets one
clear 4xx naming the offending field (``inputs[3].text: empty text``), and nothing of a request is
applied unless all of it is valid. The request schemas are in :mod:`adaptd.serving.openapi`; the
pydantic models at the end document the responses.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field

MAX_ID_CHARS = 128  # the width of predictions.id
MAX_ATTRIBUTES = 32
#: feedback may label many predictions at once: at least this many items per request
MIN_FEEDBACK_LIMIT = 1024
#: what a text or an id must contain: one character that is not whitespace. Spelled out, not
#: ``\S``: the OpenAPI document uses the same pattern, and ``\S`` means different sets in Python
#: and in the ECMA regexes of JSON Schema (U+0085 and U+001C-U+001F are space only to Python,
#: U+FEFF only to ECMA). This is the union, so no blank text is accepted by either reading.
NOT_BLANK = (
    r"[^\t\n\v\f\r \u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a"
    r"\u2028\u2029\u202f\u205f\u3000\ufeff]"
)
_NOT_BLANK = re.compile(NOT_BLANK)


def feedback_limit(max_inputs: int) -> int:
    """Most items in one feedback request."""
    return max(max_inputs, MIN_FEEDBACK_LIMIT)


class BadRequest(Exception):
    """A request that cannot be served as sent; ``status`` is its HTTP status code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictInput:
    text: str
    id: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedbackItem:
    id: str
    label: str
    #: the served text again, for retraining when the log keeps only its hash (privacy.text)
    text: str | None = None


def parse_json(body: bytes) -> Any:
    """UTF-8 JSON or a 400 saying which of the two it is not."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(400, f"body is not valid UTF-8 (byte {e.start})") from e
    if not text.strip():
        raise BadRequest(400, "empty body: expected a JSON object")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise BadRequest(400, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except RecursionError as e:
        raise BadRequest(400, "invalid JSON: nested too deeply") from e


def _list_field(data: Any, key: str, *, max_items: int) -> list[Any]:
    if not isinstance(data, dict):
        raise BadRequest(422, f"body must be a JSON object with {key!r}, got {_kind(data)}")
    unknown = sorted(k for k in data if k != key)
    if unknown:
        raise BadRequest(422, f"unknown field {unknown[0]!r} (expected only {key!r})")
    if key not in data:
        raise BadRequest(422, f"missing field {key!r}")
    items = data[key]
    if not isinstance(items, list):
        raise BadRequest(422, f"{key}: must be a list, got {_kind(items)}")
    if not items:
        raise BadRequest(422, f"{key}: empty list")
    if len(items) > max_items:
        raise BadRequest(422, f"{key}: {len(items)} items, more than the limit of {max_items}")
    return items


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _check_string(where: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(422, f"{where}: must be a string, got {_kind(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        # JSON can spell a lone surrogate (\\ud800) that no store or tokenizer accepts.
        raise BadRequest(422, f"{where}: not valid Unicode (lone surrogate at {e.start})") from e
    return value


def _check_id(where: str, value: Any) -> str:
    checked = _check_string(where, value)
    if not _NOT_BLANK.search(checked):
        raise BadRequest(422, f"{where}: empty id")
    if len(checked) > MAX_ID_CHARS:
        raise BadRequest(422, f"{where}: longer than {MAX_ID_CHARS} characters")
    return checked


def _check_text(where: str, value: Any, max_chars: int | None) -> str:
    checked = _check_string(where, value)
    if not _NOT_BLANK.search(checked):
        raise BadRequest(422, f"{where}: empty or whitespace-only text")
    if max_chars is not None and len(checked) > max_chars:
        # 422, not 413: the body fit; one field breaks a documented limit (maxLength).
        raise BadRequest(
            422,
            f"{where}: {len(checked)} characters, more than serving.max_text_chars "
            f"({max_chars}); nothing was stored",
        )
    return checked


def _check_attributes(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise BadRequest(422, f"{where}: must be an object of strings, got {_kind(value)}")
    if len(value) > MAX_ATTRIBUTES:
        raise BadRequest(422, f"{where}: {len(value)} keys, more than {MAX_ATTRIBUTES}")
    for key, item in value.items():
        _check_string(f"{where} key {key!r}", key)
        _check_string(f"{where}.{key}", item)
    return dict(value)


def _duplicates(ids: Sequence[str]) -> list[str]:
    seen: set[str] = set()
    dup: list[str] = []
    for i in ids:
        if i in seen and i not in dup:
            dup.append(i)
        seen.add(i)
    return dup


def parse_predict(
    data: Any, *, max_inputs: int, max_text_chars: int | None = None
) -> list[PredictInput]:
    items = _list_field(data, "inputs", max_items=max_inputs)
    out: list[PredictInput] = []
    for n, item in enumerate(items):
        where = f"inputs[{n}]"
        if isinstance(item, str):
            out.append(PredictInput(text=_check_text(where, item, max_text_chars)))
            continue
        if not isinstance(item, dict):
            raise BadRequest(
                422, f"{where}: must be a string or an object with 'text', got {_kind(item)}"
            )
        unknown = sorted(k for k in item if k not in {"text", "id", "attributes"})
        if unknown:
            raise BadRequest(422, f"{where}: unknown field {unknown[0]!r}")
        if "text" not in item:
            raise BadRequest(422, f"{where}: missing field 'text'")
        out.append(
            PredictInput(
                text=_check_text(f"{where}.text", item["text"], max_text_chars),
                id=_check_id(f"{where}.id", item["id"]) if item.get("id") is not None else None,
                attributes=(
                    _check_attributes(f"{where}.attributes", item["attributes"])
                    if item.get("attributes") is not None
                    else {}
                ),
            )
        )
    dup = _duplicates([p.id for p in out if p.id is not None])
    if dup:
        # 409 like an id used by an earlier request: the id is taken, by an earlier input.
        raise BadRequest(409, f"inputs: prediction id {dup[0]!r} used twice in one request")
    return out


def parse_feedback(
    data: Any, *, labels: Sequence[str], max_items: int, max_text_chars: int | None = None
) -> list[FeedbackItem]:
    items = _list_field(data, "feedback", max_items=max_items)
    out: list[FeedbackItem] = []
    for n, item in enumerate(items):
        where = f"feedback[{n}]"
        if not isinstance(item, dict):
            raise BadRequest(422, f"{where}: must be an object with 'id' and 'label'")
        unknown = sorted(k for k in item if k not in {"id", "label", "text"})
        if unknown:
            raise BadRequest(422, f"{where}: unknown field {unknown[0]!r}")
        for key in ("id", "label"):
            if key not in item:
                raise BadRequest(422, f"{where}: missing field {key!r}")
        label = item["label"]
        if not isinstance(label, str):
            raise BadRequest(422, f"{where}.label: must be a string, got {_kind(label)}")
        if label not in labels:
            raise BadRequest(
                422, f"{where}.label: {label!r} is not in the label set {list(labels)}"
            )
        text = item.get("text")
        out.append(
            FeedbackItem(
                id=_check_id(f"{where}.id", item["id"]),
                label=label,
                text=None if text is None else _check_text(f"{where}.text", text, max_text_chars),
            )
        )
    dup = _duplicates([f.id for f in out])
    if dup:
        raise BadRequest(409, f"feedback: prediction id {dup[0]!r} labelled twice in one request")
    return out


# --------------------------------------------------------------------------- responses (OpenAPI)


class PredictionOut(BaseModel):
    id: str
    label: str
    score: float
    probabilities: dict[str, float]
    adapter: str = Field(description="The adapter version that computed this prediction.")


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


class FeedbackResponse(BaseModel):
    accepted: int
