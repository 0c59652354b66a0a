"""Verify and read Argilla's webhook deliveries (`response.created`, `response.updated`, ...).

Argilla signs every delivery with the Standard Webhooks scheme (headers `webhook-id`,
`webhook-timestamp`, `webhook-signature`; HMAC-SHA256 with the webhook's `whsec_...` secret).
`verify_delivery` checks the signature and the timestamp's freshness (replay protection, five
minutes either way, as the `standardwebhooks` package enforces) before anything is parsed;
`event_dataset` says which dataset a verified event is about (so that the caller can route it),
`parse_response_event` turns a response event of a preference dataset into a `HumanResponse`, and
`parse_review_response_event` one of the review dataset into a `ReviewResponse`.

This module does not store events or decide what a label becomes: the app does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from labeling.argilla.review_schema import ReviewResponse, parse_review_response
from labeling.argilla.schema import HumanResponse, parse_api_response

__all__ = [
    "RESPONSE_EVENTS",
    "InvalidWebhook",
    "WebhookEvent",
    "event_dataset",
    "parse_response_event",
    "parse_review_response_event",
    "verify_delivery",
]

RESPONSE_EVENTS = ("response.created", "response.updated", "response.deleted")


class InvalidWebhook(ValueError):
    """The delivery is not authentic (bad or missing signature, stale timestamp) or is malformed."""


@dataclass(frozen=True)
class WebhookEvent:
    """A verified delivery: its id (for de-duplication), type, and payload data."""

    id: str
    type: str
    timestamp: str
    data: dict[str, Any]


def verify_delivery(secret: str, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
    """Check the Standard Webhooks signature of `body` and return the event it carries.

    Raises InvalidWebhook when the secret is empty, a header is missing, the signature does not
    match, the timestamp is too old or too new, or the body is not an Argilla event.
    """
    if not secret:
        raise InvalidWebhook("no webhook secret is configured; refusing unauthenticated deliveries")
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        payload = Webhook(secret).verify(body, lowered)
    except WebhookVerificationError as exc:
        raise InvalidWebhook(f"webhook signature rejected: {exc}") from exc
    except ValueError as exc:  # body is not JSON, or the secret is not base64
        raise InvalidWebhook(f"webhook could not be verified: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str) or "data" not in payload:
        raise InvalidWebhook("webhook body is not an Argilla event ({type, data, ...})")
    return WebhookEvent(
        id=lowered.get("webhook-id", ""),
        type=payload["type"],
        timestamp=str(payload.get("timestamp", "")),
        data=payload["data"] if isinstance(payload["data"], dict) else {},
    )


def parse_response_event(event: WebhookEvent) -> tuple[str, HumanResponse]:
    """The dataset name and the `HumanResponse` of a `response.*` event.

    For `response.deleted` the response is returned as Argilla last held it; the caller decides
    what deleting it means. Raises InvalidWebhook for other event types or malformed data.
    """
    if event.type not in RESPONSE_EVENTS:
        raise InvalidWebhook(f"not a response event: {event.type!r}")
    data = event.data
    try:
        record = data["record"]
        dataset = record["dataset"]["name"]
        comparison_id = record.get("external_id") or record["id"]
        annotator = data["user"]["username"]
        return dataset, parse_api_response(comparison_id, annotator, data)
    except (KeyError, TypeError) as exc:
        raise InvalidWebhook(f"malformed {event.type} event: missing {exc}") from exc
    except ValueError as exc:
        raise InvalidWebhook(f"malformed {event.type} event: {exc}") from exc


def event_dataset(event: WebhookEvent) -> str | None:
    """The name of the dataset a response event is about (None when the event does not say)."""
    try:
        name = event.data["record"]["dataset"]["name"]
    except (KeyError, TypeError):
        return None
    return name if isinstance(name, str) else None


def parse_review_response_event(event: WebhookEvent) -> tuple[str, ReviewResponse]:
    """The dataset name and the `ReviewResponse` of a `response.*` event of the review dataset.

    Raises InvalidWebhook for other event types or malformed data.
    """
    if event.type not in RESPONSE_EVENTS:
        raise InvalidWebhook(f"not a response event: {event.type!r}")
    data = event.data
    try:
        record = data["record"]
        return record["dataset"]["name"], parse_review_response(
            record.get("external_id") or record["id"], data["user"]["username"], data
        )
    except (KeyError, TypeError) as exc:
        raise InvalidWebhook(f"malformed {event.type} event: missing {exc}") from exc
    except ValueError as exc:
        raise InvalidWebhook(f"malformed {event.type} event: {exc}") from exc
