"""Refuse request text and numbers that no store, tokenizer or JSON encoder can carry, before any route runs.

Python's JSON parser accepts values that are valid JSON syntax but poison what comes after them: lone
surrogates, NUL, non-finite numbers, integers beyond 64 bits (``app.input_values`` says why each). One of them
made the tokenizer fail a whole micro-batch, a decision committed and then answered 500, and the same request
behave differently on SQLite and PostgreSQL.

``InputGuard`` answers 422 (``invalid_input``, naming the first offending location, e.g.
``body.context.subject``) for any of them in a JSON body, and for NUL in the path or the query string,
identically on every store and before anything is read or written. Malformed JSON passes through so that
FastAPI reports it as it always did. It does not check schemas, lengths or token budgets: routes and
decision types do that.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body
from app.input_values import find_hostile, parse_int

__all__ = ["InputGuard"]

# Cheap screen on the raw bytes: a body without any of these cannot hold a hostile value, and is not walked.
# (\u escapes of NUL or a surrogate, the non-finite constants, runs of 19+ digits, exponents of 3+ digits.)
_SUSPECT = re.compile(rb"\\u0000|\\u[dD][89abcdefABCDEF]|NaN|Infinity|\d{19,}|[eE][+-]?\d{3,}")


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers") or []:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


def _location(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path)


class InputGuard:
    """ASGI middleware: 422 for NUL in the path or query and for hostile values in a JSON body (module docstring)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if "\x00" in scope.get("path", ""):
            return await self._reject(send, ("path",), "contains the NUL character (\\u0000)")
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    return await self._reject(send, ("query", name.replace("\x00", "\\u0000")),
                                              "contains the NUL character (\\u0000), which cannot be stored")
        if scope.get("method") not in ("POST", "PUT", "PATCH") or not _is_json(scope):
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if _SUSPECT.search(body):
            try:
                document = json.loads(body, parse_int=parse_int)
            except ValueError:  # malformed JSON or bytes: FastAPI answers it as it always did
                document = None
            found = find_hostile(document, ("body",)) if document is not None else None
            if found is not None:
                return await self._reject(send, *found)
        await self.app(scope, replaying(body, receive), send)

    async def _reject(self, send: Send, where: tuple[str | int, ...], problem: str) -> None:
        message = f"{_location(where)}: {problem}"
        details = [{"loc": list(where), "msg": problem, "type": "value_error"}]
        response = JSONResponse(error_body("invalid_input", message, details), status_code=422)
        await response({"type": "http"}, _disconnected, send)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive channel that hands the app the already-read ``body`` once, then the client's own messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
