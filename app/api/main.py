"""The FastAPI app factory.

``create_app(settings)`` wires: JSON errors with stable codes, a request-body size limit, request
metrics, the health / readiness / metrics endpoints, and every router found in ``app/api/routes``
(a module there that defines ``router`` is included; adding an API area needs no edit here).
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import app.api.routes as routes_pkg
from app.api.input_guard import InputGuard, replaying
from app.db import get_engine, ping
from app.errors import ERROR_DESCRIPTIONS, ArbiterError, ErrorResponse, error_body, error_responses
from app.metrics import HTTP_LATENCY, HTTP_REQUESTS
from app.services.serving.warmup import WarmupStatus, warm_serving
from app.settings import Settings, get_settings

__all__ = ["create_app"]


class BodySizeLimit:
    """Answer 413 as soon as a request body exceeds ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(send)
        # Read the body up front (at most max_bytes of it) and replay it to the app: raising from
        # inside `receive` would surface as FastAPI's generic 400 for unreadable bodies.
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                return await self._reject(send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        await self.app(scope, replaying(body, receive), send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(error_body("body_too_large", f"request body exceeds {self.max_bytes} bytes"), status_code=413)
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def _include_routers(app: FastAPI) -> None:
    for info in sorted(pkgutil.iter_modules(routes_pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{routes_pkg.__name__}.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router)


_ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


def _error_answer(code: int) -> dict[str, Any]:
    return {"description": ERROR_DESCRIPTIONS[code], "content": {"application/json": {"schema": _ERROR_REF}}}


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to an OpenAPI document the error answers its generator cannot see, all with ``ErrorResponse``.

    An operation with a security requirement answers 401 and 403 (``require_roles``); one with parameters or
    a body, 422, in Arbiter's error shape (FastAPI's default ``HTTPValidationError`` is never sent: the
    validation handler below renders errors like every other); one with a body, 413 (``BodySizeLimit``); one
    with path parameters, 404. Codes particular to a route (409, 503, ...) are declared on the route with
    ``app.errors.error_responses``."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in error_schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components.setdefault("ErrorResponse", error_schema)
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            params = operation.get("parameters", [])
            codes = []
            if operation.get("security"):
                codes += [401, 403]
            if params or "requestBody" in operation:
                codes.append(422)
            if "requestBody" in operation:
                codes.append(413)
            if any(p.get("in") == "path" for p in params):
                codes.append(404)
            for code in codes:
                if str(code) not in responses or code == 422:
                    responses[str(code)] = _error_answer(code)
            for code, answer in responses.items():  # a route's own error codes declared with a description only
                if code[:1] in "45" and "content" not in answer:
                    answer["content"] = {"application/json": {"schema": _ERROR_REF}}
    text = str(schema["paths"])
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}'" not in text:
            components.pop(unused, None)
    return schema


def _openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    generate = app.openapi  # FastAPI's own: builds the document once and caches it on the app

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(generate())
        return app.openapi_schema

    return openapi


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load and warm the serving policies in the background: the process answers /healthz at
        # once, and /readyz says what is still loading (app.services.serving.warmup).
        task = None
        if settings.preload_policies:
            app.state.warmup = WarmupStatus()
            task = asyncio.create_task(warm_serving(app.state, settings, app.state.engine, app.state.warmup))
        yield
        if task is not None and not task.done():
            task.cancel()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from files shipped in the package
    # (fastapi-offline), not from a CDN, so they work on an air-gapped or firewalled host.
    app = FastAPIOffline(
        lifespan=lifespan,
        title="Arbiter",
        version="0.1.0",
        description="Preference labels, reward models, policy training and a safety layer, with an audit trail.",
    )
    app.state.settings = settings
    app.state.engine = get_engine(settings)

    @app.exception_handler(ArbiterError)
    async def _arbiter_error(_: Request, exc: ArbiterError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.details), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": list(e.get("loc", [])), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in exc.errors()]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        return JSONResponse(error_body("invalid_input", f"{where}: {first['msg']}" if where else first["msg"], details), status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
        codes = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
                 409: "conflict", 413: "body_too_large", 422: "invalid_input", 429: "rate_limited"}
        return JSONResponse(error_body(codes.get(exc.status_code, f"http_{exc.status_code}"), str(exc.detail)),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(error_body("internal_error", f"unexpected error: {type(exc).__name__}"), status_code=500)

    @app.middleware("http")
    async def _metrics(request: Request, call_next: Any):
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels(request.method, path, str(response.status_code)).inc()
        HTTP_LATENCY.labels(request.method, path).observe(time.perf_counter() - start)
        return response

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"], responses=error_responses(503))
    def readyz() -> JSONResponse:
        """Readiness: the database answers and the serving policies are loaded (503 says what is not)."""
        try:
            ping(app.state.engine)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return JSONResponse(error_body("not_ready", f"database unreachable: {type(exc).__name__}"), status_code=503)
        database = app.state.engine.dialect.name
        warmup: WarmupStatus | None = getattr(app.state, "warmup", None)
        if warmup is not None and warmup.state != "ready":
            return JSONResponse(error_body("not_ready", warmup.describe(), {"database": database, "policies": warmup.to_dict()}),
                                status_code=503)
        return JSONResponse({"status": "ready", "database": database,
                             "policies": warmup.to_dict() if warmup is not None else "loaded on first use"})

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        return PlainTextResponse(generate_latest().decode(), media_type=CONTENT_TYPE_LATEST)

    _include_routers(app)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    app.add_middleware(InputGuard)  # inside BodySizeLimit: it screens a body already bounded in size
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
