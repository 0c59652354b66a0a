"""Refuse request text and numbers that no store, tokenizer or JSON encoder can carry, before any route runs.

Python's JSON parser accepts things that are valid JSON syntax but poison what comes after it:

- a lone UTF-16 surrogate (``"\\ud800"``): not Unicode text; a tokenizer raises on it, and the response that
  echoes it back cannot be encoded as UTF-8 (so a decision was committed and then answered 500);
- the NUL character (``"\\u0000"``): PostgreSQL stores it neither in ``text`` nor in ``jsonb`` (SQLite does,
  so the same request behaved differently on the two stores);
- ``NaN``, ``Infinity`` and numbers that overflow a double (``1e309``): not JSON at all by RFC 8259;
  PostgreSQL's ``jsonb`` refuses them while SQLite's JSON stored them;
- integers outside the signed 64-bit range: every column and every seed is at most 64 bits.

``InputGuard`` answers 422 (``invalid_input``, naming the first offending location, e.g.
``body.context.subject``) for any of them in a JSON body, and for NUL in the path or the query string,
identically on every store and before anything is read or written. Malformed JSON passes through so that
FastAPI reports it as it always did. It does not check schemas, lengths or token budgets: routes and
decision types do that.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_body

__all__ = ["INT32_MAX", "INT64_MAX", "INT64_MIN", "InputGuard", "find_hostile"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MAX = 2**31 - 1  # the largest value of an INTEGER column on PostgreSQL (a sequence number, say)

# Cheap screen on the raw bytes: a body without any of these cannot hold a hostile value, and is not walked.
# (\u escapes of NUL or a surrogate, the non-finite constants, runs of 19+ digits, exponents of 3+ digits.)
_SUSPECT = re.compile(rb"\\u0000|\\u[dD][89abcdefABCDEF]|NaN|Infinity|\d{19,}|[eE][+-]?\d{3,}")


class _BigInt(str):
    """An integer literal too long for int64, kept as text (Python refuses to parse > 4300 digits anyway)."""


def _parse_int(literal: str) -> int | _BigInt:
    return int(literal) if len(literal) <= 20 else _BigInt(literal)


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains the NUL character (\\u0000), which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains a lone surrogate ({text[exc.start]!a}), which is not valid Unicode text"
    return None


def find_hostile(value: Any, where: tuple[str | int, ...] = ()) -> tuple[tuple[str | int, ...], str] | None:
    """The location and reason of the first value in a parsed JSON document that must be refused, or None.

    Example:
        >>> find_hostile({"context": {"subject": "\\ud800"}})
        (('context', 'subject'), "contains a lone surrogate ('\\\\ud800'), which is not valid Unicode text")
    """
    stack: list[tuple[tuple[str | int, ...], Any]] = [(where, value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _BigInt):
            return path, "is an integer outside the signed 64-bit range"
        if isinstance(node, str):
            problem = _text_problem(node)
            if problem:
                return path, problem
        elif isinstance(node, bool) or node is None:
            continue
        elif isinstance(node, int):
            if not INT64_MIN <= node <= INT64_MAX:
                return path, "is an integer outside the signed 64-bit range"
        elif isinstance(node, float):
            if not math.isfinite(node):
                return path, "is not a finite number (NaN, Infinity or beyond a double's range are not JSON)"
        elif isinstance(node, dict):
            for key, child in reversed(list(node.items())):
                problem = _text_problem(key)
                if problem:
                    return (*path, key.encode("utf-8", "backslashreplace").decode()), f"(a key) {problem}"
                stack.append(((*path, key), child))
        elif isinstance(node, list):
            stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(node))))
    return None


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
                document = json.loads(body, parse_int=_parse_int)
            except ValueError:  # malformed JSON or bytes: FastAPI answers it as it always did
                document = None
            found = find_hostile(document, ("body",)) if document is not None else None
            if found is not None:
                return await self._reject(send, *found)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send, where: tuple[str | int, ...], problem: str) -> None:
        message = f"{_location(where)}: {problem}"
        details = [{"loc": list(where), "msg": problem, "type": "value_error"}]
        response = JSONResponse(error_body("invalid_input", message, details), status_code=422)
        await response({"type": "http"}, _disconnected, send)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
