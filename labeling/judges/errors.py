"""Turning the provider SDKs' exceptions into `JudgeFailure` values, in one place.

Both official SDKs (openai, anthropic) share the same exception family (`APIStatusError`,
`APITimeoutError`, `APIConnectionError`, ...), so one mapping serves both: it takes the SDK module
and reads the class hierarchy and the HTTP status. `Retry-After` is read here too (milliseconds
header first, then seconds or an HTTP date), because our retry policy, not the SDK's, honours it.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from types import ModuleType

from labeling.verdicts import FailureKind, JudgeFailure


def parse_retry_after(headers: Mapping[str, str] | None, *, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, or None when it did not say."""
    if not headers:
        return None
    value = headers.get("retry-after-ms")
    if value is not None:
        try:
            return max(float(value) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return max(email.utils.mktime_tz(parsed) - (time.time() if now is None else now), 0.0)


def kind_for_status(status: int) -> FailureKind:
    if status == 429:
        return "rate_limit"
    if status >= 500 or status in (408, 409):
        return "server_error"
    if status in (401, 402, 403):
        return "auth"
    return "bad_request"


def failure_from_sdk_error(
    exc: Exception, sdk: ModuleType, *, judge: str, provider: str, model: str
) -> JudgeFailure | None:
    """The failure an SDK call's exception stands for, or None if it is not one we expect."""
    if isinstance(exc, sdk.APITimeoutError):
        return JudgeFailure("timeout", str(exc), judge, provider, model)
    if isinstance(exc, sdk.APIConnectionError):
        return JudgeFailure("connection", str(exc), judge, provider, model)
    if isinstance(exc, sdk.APIStatusError):
        headers = exc.response.headers if exc.response is not None else None
        return JudgeFailure(
            kind_for_status(exc.status_code),
            f"HTTP {exc.status_code}: {exc.message}"[:500],
            judge,
            provider,
            model,
            retry_after_s=parse_retry_after(headers),
        )
    if isinstance(exc, sdk.APIResponseValidationError):
        return JudgeFailure("malformed", f"response did not match the API schema: {exc}"[:500], judge, provider, model)
    if isinstance(exc, sdk.APIError):
        return JudgeFailure("error", str(exc)[:500], judge, provider, model)
    if isinstance(exc, json.JSONDecodeError):
        # The SDKs decode a 200 body without catching this (e.g. an HTML page from a proxy).
        return JudgeFailure("malformed", f"response body is not JSON: {exc}"[:500], judge, provider, model)
    return None
