"""Errors with a stable code, rendered by the API as ``{"error": {"code", "message"}}``.

Services raise ``ArbiterError`` subclasses; routes do not build error responses themselves. The CLI
prints the same message and exits non-zero.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ArbiterError", "NotFound", "Conflict", "InvalidInput", "Unavailable", "error_body"]


class ArbiterError(Exception):
    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.details = details


class NotFound(ArbiterError):
    status, code = 404, "not_found"


class Conflict(ArbiterError):
    status, code = 409, "conflict"


class InvalidInput(ArbiterError):
    status, code = 422, "invalid_input"


class Unavailable(ArbiterError):
    status, code = 503, "unavailable"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}
