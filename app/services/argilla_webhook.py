"""The one Argilla webhook: verify a delivery's signature, then hand it to the dataset it belongs to (the
annotators' comparisons, or the review queue's mirror). Nothing is written unless the signature is valid."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from app.errors import ArbiterError, InvalidInput, NotFound
from app.services.argilla import webhook_secret
from app.services.labels.argilla_sync import upsert_human_labels
from app.services.review.argilla_sync import ingest_review_event
from app.settings import Settings
from labeling.argilla import InvalidWebhook, event_dataset, parse_response_event, verify_delivery

__all__ = ["ingest_webhook"]


def ingest_webhook(session: Session, settings: Settings, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """Verify an Argilla delivery and apply it. Nothing is written unless the signature is valid."""
    try:
        event = verify_delivery(webhook_secret(settings), body, headers)
    except InvalidWebhook as exc:
        raise ArbiterError(str(exc), code="invalid_signature", status=401) from exc
    if event.type not in ("response.created", "response.updated"):
        return {"status": "ignored", "event": event.type}
    if event_dataset(event) == settings.argilla_review_dataset:
        return ingest_review_event(session, settings, event)
    try:
        dataset, response = parse_response_event(event)
    except InvalidWebhook as exc:
        raise InvalidInput(str(exc)) from exc
    if dataset != settings.argilla_dataset:
        return {"status": "ignored", "event": event.type, "reason": f"dataset {dataset!r} is not Arbiter's"}
    if response.status == "draft":
        return {"status": "ignored", "event": event.type, "reason": "draft"}
    report = upsert_human_labels(session, dataset, [response], actor=f"argilla:{response.annotator}")
    session.commit()
    if report.unknown_comparisons:
        raise NotFound(f"comparison {response.comparison_id} is not in Arbiter's store")
    return {"status": "applied", "event": event.type, **{k: getattr(report, k) for k in ("created", "updated", "unchanged")}}
