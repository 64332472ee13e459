"""The HTTP API (FastAPI), built by :func:`create_app` from a :class:`ServingContext`.

No globals: everything the handlers touch is in the context, which the composition root builds.
Torch never runs on the event loop (handlers await the batcher's futures), and the store is only
touched in the threadpool. Bodies are read with a size limit while streaming, then parsed by
:mod:`adaptd.serving.requests`, so bad input is a 4xx naming the problem, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adaptd import __version__
from adaptd.config import Settings
from adaptd.errors import (
    AdapterRefusedError,
    ConfigError,
    IncompatibleAdapterError,
    NotFoundError,
)
from adaptd.metrics import Metrics
from adaptd.privacy.feedback import TextMismatch, attach_texts
from adaptd.privacy.guard import TextGuard
from adaptd.security import bearer_matches
from adaptd.serving import openapi
from adaptd.serving.batcher import Batcher, NotReadyError, QueueFullError
from adaptd.serving.logwriter import PredictionLog, make_row
from adaptd.serving.requests import (
    BadRequest,
    FeedbackResponse,
    PredictResponse,
    feedback_limit,
    parse_feedback,
    parse_json,
    parse_predict,
)
from adaptd.storage import repository as repo
from adaptd.storage.engine import describe_failure
from adaptd.storage.records import FeedbackRecord

logger = logging.getLogger(__name__)

RETRY_AFTER_S = "1"
RETRY_LATER = {"Retry-After": RETRY_AFTER_S}
#: how long feedback waits for its prediction to leave the log writer's buffer
FEEDBACK_FLUSH_TIMEOUT_S = 5.0
#: the same while the writer's last write failed (its next retry may still succeed)
FAILING_FLUSH_TIMEOUT_S = 0.5


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(kw_only=True)
class ServingContext:
    """What the HTTP layer needs from the daemon; the service builds it."""

    settings: Callable[[], Settings]
    engine: Engine
    metrics: Metrics
    #: None in the control role: predictions are not served there
    batcher: Batcher | None
    log: PredictionLog | None
    labels: tuple[str, ...]
    #: why the daemon is not ready, or None when it is
    not_ready: Callable[[], str | None]
    status: Callable[[], dict[str, Any]]
    #: admin actions, run in the threadpool; they return a JSON-able description
    promote: Callable[[str, str], dict[str, Any]]
    rollback: Callable[[str], dict[str, Any]]
    #: what may be stored of each text (privacy.text)
    texts: TextGuard
    clock: Callable[[], datetime] = _utcnow
    #: which part is stuck (named), or None: /healthz answers 503 with it
    stuck: Callable[[], str | None] = lambda: None


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


class _Problem(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


_ROUTES = {
    "/v1/predict",
    "/v1/feedback",
    "/v1/status",
    "/v1/adapters",
    "/v1/adapters/rollback",
    "/healthz",
    "/readyz",
    "/metrics",
}


def _route_of(path: str) -> str:
    if path in _ROUTES:
        return path
    if path.startswith("/v1/adapters/") and path.endswith("/promote"):
        return "/v1/adapters/{version}/promote"
    if path.startswith(("/docs", "/openapi")):
        return "/docs"
    return "other"


class _MetricsMiddleware:
    """Request counts and latency by route template (never the raw path: ids are unbounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = _route_of(scope.get("path", ""))
            self.metrics.serving.requests.labels(route, str(code)).inc()
            self.metrics.serving.request_latency.labels(route).observe(
                time.perf_counter() - started
            )


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it exceeds ``limit`` (Content-Length may lie)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _Problem(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _Problem(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(ctx: ServingContext) -> FastAPI:
    app = FastAPI(
        title="adaptd",
        version=__version__,
        description="Serve a LoRA-adapted classifier, log every prediction, take feedback.",
    )
    openapi.install(app, ctx.settings, ctx.labels)
    # A missing file or variable: the start fails (exit 2), not the first call.
    ctx.settings().server.feedback_secret()
    ctx.settings().server.admin_secret()

    @app.exception_handler(_Problem)
    async def _problem(_: Request, exc: _Problem) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(BadRequest)
    async def _bad(_: Request, exc: BadRequest) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        logger.exception("internal error")
        return _error(500, f"internal error: {type(exc).__name__}")

    async def _json(request: Request) -> Any:
        body = await _read_body(request, ctx.settings().server.max_body_bytes)
        return parse_json(body)

    # ------------------------------------------------------------------ predict

    @app.post("/v1/predict", response_model=PredictResponse)
    async def predict(request: Request) -> dict[str, Any]:
        settings = ctx.settings()
        data = await _json(request)
        inputs = parse_predict(
            data,
            max_inputs=settings.server.max_inputs,
            max_text_chars=settings.serving.max_text_chars,
        )
        batcher, log = ctx.batcher, ctx.log
        if batcher is None:
            raise _Problem(503, "this instance does not serve predictions (--role control)")
        logging_on = settings.serving.log_predictions and log is not None
        client_ids = [p.id for p in inputs if p.id is not None]
        if client_ids and logging_on:
            assert log is not None
            taken = log.claim_ids(client_ids)
            if not taken:
                try:
                    taken = sorted(await run_in_threadpool(_stored_ids, ctx.engine, client_ids))
                except SQLAlchemyError:
                    # Predictions need no store: serve them. An id that turns out to be stored
                    # already is caught by the log writer (dropped as duplicate_id, counted).
                    taken = []
                if taken:
                    log.release_ids(client_ids)
            if taken:
                raise _Problem(409, f"prediction id {taken[0]!r} was already used")
        if settings.privacy.log_texts:
            logger.debug("predict texts: %r", [p.text for p in inputs])
        started = time.perf_counter()
        try:
            future = batcher.submit([p.text for p in inputs])
            predictions = await asyncio.wrap_future(future)
        except QueueFullError as e:
            _release(log, client_ids)
            raise _Problem(503, str(e), {"Retry-After": RETRY_AFTER_S}) from e
        except NotReadyError as e:
            _release(log, client_ids)
            raise _Problem(503, f"not ready: {e}", {"Retry-After": RETRY_AFTER_S}) from e
        except BaseException:
            _release(log, client_ids)
            raise
        latency_ms = (time.perf_counter() - started) * 1000.0
        now = ctx.clock()
        ids = [p.id or uuid.uuid4().hex for p in inputs]
        if logging_on:
            assert log is not None
            kept = ctx.texts.for_logs([item.text for item in inputs])
            rows = [
                make_row(
                    prediction_id=pid,
                    ts=now,
                    text=stored,
                    attributes=item.attributes,
                    prediction=pred,
                    labels=ctx.labels,
                    latency_ms=latency_ms,
                )
                for pid, item, pred, stored in zip(ids, inputs, predictions, kept, strict=True)
            ]
            log.submit(rows)
        return {
            "predictions": [
                {
                    "id": pid,
                    "label": pred.label,
                    "score": pred.score,
                    "probabilities": dict(zip(ctx.labels, pred.probabilities, strict=True)),
                    "adapter": pred.adapter,
                }
                for pid, pred in zip(ids, predictions, strict=True)
            ]
        }

    # ------------------------------------------------------------------ feedback

    def _feedback_auth(request: Request) -> None:
        try:
            token = ctx.settings().server.feedback_secret()
        except ConfigError as e:
            # The file was readable at start: someone removed or emptied it since.
            logger.error("feedback refused: %s", e)
            raise _Problem(503, f"feedback token unavailable: {e}", RETRY_LATER) from e
        if token is None:
            return
        if not bearer_matches(request.headers.get("authorization"), token):
            raise _Problem(
                401,
                "missing or wrong feedback bearer token (server.feedback_token is set: send "
                "'Authorization: Bearer <token>'); nothing was stored",
                {"WWW-Authenticate": "Bearer"},
            )

    @app.post("/v1/feedback", response_model=FeedbackResponse)
    async def feedback(request: Request) -> dict[str, Any]:
        _feedback_auth(request)
        settings = ctx.settings()
        data = await _json(request)
        items = parse_feedback(
            data,
            labels=ctx.labels,
            max_items=feedback_limit(settings.server.max_inputs),
            max_text_chars=settings.serving.max_text_chars,
        )
        records = [FeedbackRecord(prediction_id=f.id, label=f.label, ts=ctx.clock()) for f in items]
        texts = {f.id: f.text for f in items if f.text is not None}
        try:
            missing = await run_in_threadpool(
                store_feedback, ctx.engine, ctx.log, records, texts=texts, guard=ctx.texts
            )
        except TextMismatch as e:
            raise _Problem(422, str(e)) from e
        except SQLAlchemyError as e:
            why = describe_failure(e)
            raise _Problem(503, f"{why}; feedback not stored, retry later", RETRY_LATER) from e
        except StillBufferedError as e:
            why = (ctx.log.state().last_error if ctx.log else None) or "store slow"
            raise _Problem(
                503,
                f"prediction {e.prediction_id!r} is not written to the store yet ({why}); "
                "feedback not stored, retry later",
                RETRY_LATER,
            ) from e
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            failing = ctx.log.state().last_error if ctx.log is not None else None
            if failing is not None:
                # The writer cannot write: an unknown id may be a prediction it had to drop
                # (counted, reason store_full or buffer_full). Say why instead of claiming it
                # was never served; once the store takes rows again, a dropped one is a 404.
                raise _Problem(
                    503,
                    f"prediction id {missing[0]!r}{more} is not in the store, and the "
                    f"prediction log cannot write ({failing}); feedback not stored, retry later",
                    RETRY_LATER,
                )
            raise _Problem(404, f"unknown prediction id {missing[0]!r}{more}; nothing was stored")
        return {"accepted": len(records)}

    # ------------------------------------------------------------------ status and adapters

    @app.get("/v1/status")
    async def status() -> dict[str, Any]:
        return await run_in_threadpool(ctx.status)

    @app.get("/v1/adapters")
    async def adapters() -> dict[str, Any]:
        try:
            records = await run_in_threadpool(repo.list_adapters, ctx.engine)
        except SQLAlchemyError as e:
            raise _Problem(503, "store unreachable") from e
        return {
            "adapters": [
                {
                    "version": r.version,
                    "status": r.status,
                    "parent": r.parent,
                    "created": r.created.isoformat(),
                    "promoted": r.promoted.isoformat() if r.promoted else None,
                    "reason": r.reason,
                }
                for r in records
            ]
        }

    def _admin(request: Request) -> None:
        try:
            token = ctx.settings().server.admin_secret()
        except ConfigError as e:  # readable at start, removed or emptied since
            logger.error("admin call refused: %s", e)
            raise _Problem(503, f"admin token unavailable: {e}", RETRY_LATER) from e
        if token is None:
            raise _Problem(403, "admin endpoints are disabled: set server.admin_token to enable")
        if not bearer_matches(request.headers.get("authorization"), token):
            raise _Problem(
                401, "missing or wrong admin bearer token", {"WWW-Authenticate": "Bearer"}
            )

    async def _reason(request: Request) -> str:
        body = await _read_body(request, ctx.settings().server.max_body_bytes)
        if not body.strip():
            return "promoted over HTTP"
        data = parse_json(body)
        if not isinstance(data, dict) or not isinstance(data.get("reason", ""), str):
            raise BadRequest(422, "body must be an object with an optional string 'reason'")
        unknown = sorted(k for k in data if k != "reason")
        if unknown:
            raise BadRequest(422, f"unknown field {unknown[0]!r} (expected only 'reason')")
        return str(data.get("reason") or "over HTTP")

    async def _admin_call(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            return await run_in_threadpool(call)
        except NotFoundError as e:
            raise _Problem(404, str(e)) from e
        except (AdapterRefusedError, IncompatibleAdapterError) as e:
            raise _Problem(409, str(e)) from e
        except SQLAlchemyError as e:
            raise _Problem(503, "store unreachable") from e

    @app.post("/v1/adapters/{version}/promote")
    async def promote(version: str, request: Request) -> dict[str, Any]:
        _admin(request)
        reason = await _reason(request)
        return await _admin_call(lambda: ctx.promote(version, reason))

    @app.post("/v1/adapters/rollback")
    async def rollback(request: Request) -> dict[str, Any]:
        _admin(request)
        reason = await _reason(request)
        return await _admin_call(lambda: ctx.rollback(reason))

    # ------------------------------------------------------------------ probes and metrics

    @app.get("/healthz")
    async def healthz() -> Response:
        reason = await run_in_threadpool(ctx.stuck)
        if reason is not None:
            return _error(503, f"stuck: {reason}")
        return JSONResponse({"status": "ok"})

    @app.get("/readyz")
    async def readyz() -> Response:
        reason = await run_in_threadpool(ctx.not_ready)
        if reason is not None:
            return _error(503, reason)
        return JSONResponse({"ready": True})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    wrapped: Any = _MetricsMiddleware
    app.add_middleware(wrapped, metrics=ctx.metrics)
    return app


def _release(log: PredictionLog | None, ids: list[str]) -> None:
    if log is not None and ids:
        log.release_ids(ids)


def _stored_ids(engine: Engine, ids: list[str]) -> set[str]:
    with engine.connect() as conn:
        return repo.existing_prediction_ids(conn, ids)


class StillBufferedError(Exception):
    """Feedback names a prediction this daemon served whose row is not in the store yet."""

    def __init__(self, prediction_id: str) -> None:
        super().__init__(prediction_id)
        self.prediction_id = prediction_id


def store_feedback(
    engine: Engine,
    log: PredictionLog | None,
    records: list[FeedbackRecord],
    *,
    texts: Mapping[str, str] | None = None,
    guard: TextGuard | None = None,
) -> list[str]:
    """Store all feedback in one transaction, or none of it: returns the unknown ids.

    Feedback often arrives right after its prediction's answer, while the row still waits in the
    log writer's buffer. The writer is asked first and the store second: a row leaves the
    writer's pending set only once committed, so in this order no row can slip between the two
    looks. The other order refused 14 of 800 calls in the concurrent-clients test (issue 10
    measured 102 of 2,960): the row was committed just after the store was read and forgotten
    by the writer just before it was asked.
    """
    ids = [r.prediction_id for r in records]
    pending = log.pending_among(ids) if log is not None else set()
    with engine.connect() as conn:
        known = repo.existing_prediction_ids(conn, ids)
    missing = [i for i in ids if i not in known]
    if log is not None and any(i in pending for i in missing):
        # Predictions still in the log writer's buffer: write them out, then look again. A
        # writer whose last write failed is retrying with backoff: waiting would only delay
        # the 503 (and hold a threadpool worker) while the store is away or full.
        failing = log.state().last_error is not None
        log.flush(timeout=FAILING_FLUSH_TIMEOUT_S if failing else FEEDBACK_FLUSH_TIMEOUT_S)
        # The same order again, writer first: asked after the store, a row committed between
        # the two looks was in neither (a 404 for a prediction answered 200, seen once in the
        # PostgreSQL restart test while the writer caught up on its backlog).
        pending = log.pending_among(missing)
        with engine.connect() as conn:
            known = repo.existing_prediction_ids(conn, ids)
        missing = [i for i in ids if i not in known]
        still = [i for i in missing if i in pending]
        if still:
            raise StillBufferedError(sorted(still)[0])
    if missing:
        return missing
    with engine.begin() as conn:
        if texts and guard is not None:
            attach_texts(conn, guard, texts)  # raises before anything is written
        repo.upsert_feedback(conn, records)
    return []
