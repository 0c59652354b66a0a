"""Errors with a stable code, rendered by the API as ``{"error": {"code", "message"}}``.

Services raise ``ArbiterError`` subclasses; routes do not build error responses themselves. The CLI
prints the same message and exits non-zero.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ArbiterError", "NotFound", "Forbidden", "Conflict", "InvalidInput", "Unavailable", "ErrorResponse", "error_body",
           "error_responses"]


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


class Forbidden(ArbiterError):
    status, code = 403, "forbidden"


class Conflict(ArbiterError):
    status, code = 409, "conflict"


class InvalidInput(ArbiterError):
    status, code = 422, "invalid_input"


class Unavailable(ArbiterError):
    status, code = 503, "unavailable"


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. `not_found`, `idempotency_conflict`.")
    message: str = Field(description="What went wrong, for a person.")
    details: Any = Field(None, description="Optional structured details (e.g. every validation error).")


class ErrorResponse(BaseModel):
    """The body of every error answer (what ``error_body`` builds), as the OpenAPI document declares it."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "Bad request.",
    401: "Missing, invalid or revoked API key (or, for webhooks, signature).",
    403: "The key's role may not do this.",
    404: "Not found.",
    409: "Conflicts with the current state (already decided, already recorded, reused Idempotency-Key).",
    413: "Request body larger than ARBITER_MAX_BODY_BYTES.",
    422: "Invalid input.",
    502: "A service Arbiter depends on answered with an error.",
    503: "Unavailable: not configured here, or a dependency is down.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the error codes it answers with, each with the error model.

    Example:
        >>> sorted(error_responses(404, 409))
        [404, 409]
    """
    return {code: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return {"error": body}
