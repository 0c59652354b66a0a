"""Argilla client pieces that need no server: faults, record mapping, webhook verification."""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from labeling.argilla import (
    ArgillaClient,
    ArgillaConnection,
    ArgillaUnavailable,
    DatasetSpec,
    InvalidWebhook,
    JudgeSuggestion,
    PushItem,
    free_port,
    parse_response_event,
    verify_delivery,
)
from labeling.argilla.schema import parse_api_response, to_record

SPEC = DatasetSpec(name="prefs", workspace="arbiter")


def _item(i: int = 1, **kw) -> PushItem:
    fields = {"prompt": "prompt", "response_a": "answer one", "response_b": "answer two", **kw}
    return PushItem(f"cmp-{i}", **fields)


def test_unreachable_argilla_is_a_clear_error_and_confirms_nothing():
    confirmed: list[str] = []
    started = time.monotonic()
    with pytest.raises(ArgillaUnavailable, match="unreachable"):
        client = ArgillaClient(ArgillaConnection(f"http://127.0.0.1:{free_port()}", "key", timeout_s=3))
        client.push(SPEC, [_item()], on_confirmed=confirmed.extend)
    assert confirmed == []
    assert time.monotonic() - started < 20  # fails fast: no retry loop against a dead server


def test_connection_and_items_validate_their_input():
    with pytest.raises(ValueError, match="http"):
        ArgillaConnection("localhost:6900", "key")
    with pytest.raises(ValueError, match="api_key"):
        ArgillaConnection("http://localhost:6900", "")
    with pytest.raises(TypeError, match="response_b"):
        PushItem("c1", "prompt", "answer", None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="choice"):
        JudgeSuggestion("first", agent="judge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_submitted"):
        DatasetSpec("d", "w", min_submitted=0)


def test_record_carries_id_fields_metadata_and_judge_suggestion():
    record = to_record(_item(7, priority=3, selection_reason="disagreement",
                             suggestion=JudgeSuggestion("b", agent="openai:gpt", score=0.9)))
    assert record.id == "cmp-7"
    assert record.fields["response_a"] == "answer one"
    assert record.metadata["priority"] == 3.0 and record.metadata["selection_reason"] == "disagreement"
    assert to_record(_item(8, response_b="  ")).fields["response_b"] == "_(empty)_"  # real data has empty answers
    suggestion = record.suggestions["preference"]
    assert (suggestion.value, suggestion.score, suggestion.agent) == ("b", 0.9, "openai:gpt")


def _response(status="submitted", preference="a", **values) -> dict:
    body = {"preference": {"value": preference}} if preference is not None else {}
    body.update({k: {"value": v} for k, v in values.items()})
    return {"id": "r1", "status": status, "values": body, "updated_at": "2024-05-01T10:00:00.123456"}


def test_parse_api_response():
    parsed = parse_api_response("c1", "ann", _response(rationale="clearer", safety_flags=["b_unsafe"]))
    assert (parsed.choice, parsed.rationale, parsed.safety_flags) == ("a", "clearer", ("b_unsafe",))
    assert parsed.responded_at == datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert parse_api_response("c1", "ann", _response("discarded")).choice is None
    with pytest.raises(ValueError, match="without a preference"):
        parse_api_response("c1", "ann", _response(preference=None))
    with pytest.raises(ValueError, match="unknown preference"):
        parse_api_response("c1", "ann", _response(preference="left"))
    with pytest.raises(ValueError, match="status"):
        parse_api_response("c1", "ann", _response("maybe"))


# ------------------------------------------------------------------ webhooks


def _argilla_delivery(secret: str, event: str, data: dict, sent_at: datetime | None = None) -> tuple[bytes, dict]:
    """Sign a delivery exactly as argilla-server's `notify_event` does (Standard Webhooks)."""
    sent_at = sent_at or datetime.now(UTC)
    msg_id = f"msg_{secrets.token_urlsafe(16)}"
    payload = json.dumps({"type": event, "version": 1, "timestamp": sent_at.isoformat(), "data": data})
    signature = Webhook(secret).sign(msg_id, sent_at, payload)
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
    return payload.encode(), headers


def _event_data(choice="b") -> dict:
    return {
        "id": "resp-1",
        "status": "submitted",
        "values": {"preference": {"value": choice}},
        "updated_at": "2024-05-01T10:00:00",
        "user": {"username": "ann"},
        "record": {"id": "rec-1", "external_id": "cmp-1", "dataset": {"name": "prefs"}},
    }


SECRET = base64.b64encode(secrets.token_bytes(32)).decode()  # how argilla-server makes secrets


def test_signed_delivery_is_verified_and_parsed():
    body, headers = _argilla_delivery(SECRET, "response.updated", _event_data())
    event = verify_delivery(SECRET, body, {k.title(): v for k, v in headers.items()})  # header case
    assert event.type == "response.updated" and event.id == headers["webhook-id"]
    dataset, response = parse_response_event(event)
    assert dataset == "prefs"
    assert (response.comparison_id, response.annotator, response.choice) == ("cmp-1", "ann", "b")


@pytest.mark.parametrize("tamper", ["body", "secret", "stale", "missing-header", "no-secret"])
def test_bad_deliveries_are_rejected(tamper):
    sent_at = datetime.now(UTC) - (timedelta(minutes=10) if tamper == "stale" else timedelta())
    body, headers = _argilla_delivery(SECRET, "response.created", _event_data(), sent_at)
    secret = SECRET
    if tamper == "body":
        body = body.replace(b'"b"', b'"a"')
    elif tamper == "secret":
        secret = base64.b64encode(secrets.token_bytes(32)).decode()
    elif tamper == "missing-header":
        headers.pop("webhook-signature")
    elif tamper == "no-secret":
        secret = ""
    with pytest.raises(InvalidWebhook):
        verify_delivery(secret, body, headers)


def test_non_response_events_are_not_parsed_as_labels():
    body, headers = _argilla_delivery(SECRET, "dataset.created", {"id": "x"})
    with pytest.raises(InvalidWebhook, match="not a response event"):
        parse_response_event(verify_delivery(SECRET, body, headers))
