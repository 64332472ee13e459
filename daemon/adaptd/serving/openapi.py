"""The OpenAPI document of the HTTP API, written to match what the handlers really do.

Bodies are parsed by hand (:mod:`adaptd.serving.requests`) so that every bad input gets one
4xx naming the field, which means FastAPI cannot derive their schemas. They are written here
instead, from the same limits the parsers read (``server.max_inputs``, ``serving.max_text_chars``,
the label set), and every status code a handler can answer is listed with the error shape. The
schemathesis test fuzzes a running daemon against this document, so a drift between the two
fails the suite rather than a client.

The document is built per request of ``/openapi.json`` (it is small) because the limits and
the tokens it describes can change with a SIGHUP.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from adaptd.config import Settings
from adaptd.serving.requests import MAX_ATTRIBUTES, MAX_ID_CHARS, NOT_BLANK, feedback_limit

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error: one line naming what is wrong and what to do.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
BEARER = "bearer"

_WHY: dict[int, str] = {
    400: "The body is not UTF-8 JSON.",
    401: "Missing or wrong bearer token.",
    403: "The endpoint is disabled (no token configured).",
    404: "A named prediction id or adapter version does not exist.",
    409: "Conflicts with the current state (an id already used, a refused adapter, nothing to "
    "roll back to).",
    413: "The body exceeds server.max_body_bytes.",
    422: "The body is JSON but not what the endpoint takes (a text longer than "
    "serving.max_text_chars included); the message names the field.",
    503: "Not ready, the queue is full, or the store is unreachable: retry later.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": False,
        "schema": {"type": "string"},
    }
}

#: every status code each operation can answer besides 200 (the handlers in http.py)
ERRORS: dict[tuple[str, str], tuple[int, ...]] = {
    ("/v1/predict", "post"): (400, 409, 413, 422, 503),
    ("/v1/feedback", "post"): (400, 401, 404, 409, 413, 422, 503),
    ("/v1/status", "get"): (),
    ("/v1/adapters", "get"): (503,),
    ("/v1/adapters/{version}/promote", "post"): (400, 401, 403, 404, 409, 413, 422, 503),
    ("/v1/adapters/rollback", "post"): (400, 401, 403, 404, 409, 413, 422, 503),
    ("/healthz", "get"): (503,),
    ("/readyz", "get"): (503,),
    ("/metrics", "get"): (),
}
_ADMIN = {("/v1/adapters/{version}/promote", "post"), ("/v1/adapters/rollback", "post")}
_FEEDBACK = ("/v1/feedback", "post")


def _text(max_chars: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_chars, "pattern": NOT_BLANK}


def _id() -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_ID_CHARS, "pattern": NOT_BLANK}


def predict_body(*, max_inputs: int, max_text_chars: int) -> dict[str, Any]:
    item = {
        "type": "object",
        "properties": {
            "text": {**_text(max_text_chars), "description": "The text to classify."},
            "id": {
                "anyOf": [_id(), {"type": "null"}],
                "description": "Your id for it (unique); generated when absent.",
            },
            "attributes": {
                "anyOf": [
                    {
                        "type": "object",
                        "additionalProperties": {"type": "string"},
                        "maxProperties": MAX_ATTRIBUTES,
                    },
                    {"type": "null"},
                ],
                "description": "Free key/value strings for slicing and bias metrics.",
            },
        },
        "required": ["text"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_inputs,
                "items": {"anyOf": [_text(max_text_chars), item]},
                "description": "Texts, or objects with text/id/attributes. Ids must be unique "
                "(a repeated or already used id is a 409).",
            }
        },
        "required": ["inputs"],
        "additionalProperties": False,
    }


def feedback_body(*, labels: Sequence[str], max_items: int, max_text_chars: int) -> dict[str, Any]:
    text = {
        **_text(max_text_chars),
        "description": "The served text again: with privacy.text hashed the log keeps only its "
        "keyed hash and retraining learns from texts sent here; refused (422) if it is not "
        "the served text.",
    }
    item = {
        "type": "object",
        "properties": {
            "id": _id(),
            "label": {"type": "string", "enum": list(labels)},
            "text": text,
        },
        "required": ["id", "label"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {
            "feedback": {"type": "array", "minItems": 1, "maxItems": max_items, "items": item}
        },
        "required": ["feedback"],
        "additionalProperties": False,
    }


REASON_BODY: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "description": "Recorded with the event."}},
    "additionalProperties": False,
}


def _json_body(schema: dict[str, Any], *, required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def build_document(app: FastAPI, settings: Settings, labels: Sequence[str]) -> dict[str, Any]:
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # FastAPI's validation-error shapes: never answered (bodies are parsed by hand).
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {BEARER: {"type": "http", "scheme": "bearer"}}
    bodies = {
        ("/v1/predict", "post"): _json_body(
            predict_body(
                max_inputs=settings.server.max_inputs,
                max_text_chars=settings.serving.max_text_chars,
            ),
            required=True,
        ),
        _FEEDBACK: _json_body(
            feedback_body(
                labels=labels,
                max_items=feedback_limit(settings.server.max_inputs),
                max_text_chars=settings.serving.max_text_chars,
            ),
            required=True,
        ),
        **{key: _json_body(REASON_BODY, required=False) for key in _ADMIN},
    }
    for (path, method), codes in ERRORS.items():
        operation = doc["paths"][path][method]
        if (path, method) in bodies:
            operation["requestBody"] = bodies[(path, method)]
        ok = operation["responses"].get("200", {"description": "OK"})
        responses: dict[str, Any] = {"200": ok}
        for code in codes:
            responses[str(code)] = {
                "description": _WHY[code],
                "content": {"application/json": {"schema": ERROR_REF}},
                **({"headers": _RETRY_AFTER} if code == 503 else {}),
            }
        operation["responses"] = responses
        admin = (path, method) in _ADMIN and settings.server.admin_token is not None
        feedback = (path, method) == _FEEDBACK and settings.server.feedback_token is not None
        if admin or feedback:
            operation["security"] = [{BEARER: []}]
    # Feedback names a prediction's id: the link lets clients (and schemathesis's stateful
    # phase) chain predict -> feedback with an id that exists, the path real clients take.
    feedback_id = doc["paths"]["/v1/feedback"]["post"]["operationId"]
    doc["paths"]["/v1/predict"]["post"]["responses"]["200"]["links"] = {
        "LabelFirstPrediction": {
            "operationId": feedback_id,
            "requestBody": {
                "feedback": [{"id": "$response.body#/predictions/0/id", "label": labels[0]}]
            },
        }
    }
    doc["paths"]["/metrics"]["get"]["responses"]["200"] = {
        "description": "Prometheus text exposition format.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    return doc


def install(app: FastAPI, settings: Callable[[], Settings], labels: Sequence[str]) -> None:
    """Serve :func:`build_document` as ``/openapi.json`` (and to /docs)."""

    def openapi() -> dict[str, Any]:
        return build_document(app, settings(), labels)

    app.openapi = openapi  # type: ignore[method-assign]
