"""The review dataset's pieces that need no server: rendering, records, parsing answers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from labeling.argilla import (
    ReviewAnswer,
    ReviewRecord,
    WebhookEvent,
    event_dataset,
    parse_review_response_event,
    render_context,
    render_reasons,
)
from labeling.argilla.review_schema import parse_review_response, to_review_record

TICKET = {"subject": "Refund", "body": "Please refund\nmy order", "customer": {"tier": "vip"}, "tags": ["a", "b"]}


def test_context_reads_as_a_list_not_json():
    """Scalars on one line, nested objects indented, multi-line text quoted, conversations as turns;
    only what has no readable form (a list of objects) stays JSON."""
    assert render_context(TICKET) == (
        "- **subject:** Refund\n"
        "- **body:**\n"
        "  > Please refund\n"
        "  > my order\n"
        "- **customer:**\n"
        "  - **tier:** vip\n"
        "- **tags:** a, b"
    )
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]}
    assert render_context(chat) == "- **messages:**\n  - **User:** hi\n  - **Assistant:** _(empty)_"
    assert render_context({"items": [{"sku": 1}]}) == '- **items:**\n  ```json\n  [\n    {\n      "sku": 1\n    }\n  ]\n  ```'
    assert render_context({}) == "_(no context)_"


def test_reasons_name_code_source_and_message():
    reasons = [
        {"source": "rules", "code": "large-refund-review", "outcome": "escalate", "message": "Over 1000."},
        {"source": "moderation", "provider": "local", "code": "harassment", "outcome": "block",
         "category": "harassment", "score": 0.934},
    ]
    assert render_reasons(reasons) == (
        "- **large-refund-review** (rules; escalate): Over 1000.\n"
        "- **harassment** (local; block, harassment, score 0.93)"
    )
    assert render_reasons([]) == "_(no reasons recorded)_"


def test_record_is_keyed_by_item_and_carries_an_answer_only_with_a_user():
    record = ReviewRecord("item-1", "billing", "ticket-routing", "escalated", TICKET, [], "rejected",
                          ReviewAnswer("reject", "wrong-action", note=" ", edited_content=None))
    with pytest.raises(ValueError, match="id of the user"):
        to_review_record(record)
    user = uuid.uuid4()
    built = to_review_record(record, user)
    assert built.id == "item-1"
    assert built.metadata["arbiter_status"] == "rejected" and built.metadata["decision_type"] == "ticket-routing"
    assert built.fields["decision"] == "**ticket-routing**, escalated: it waits for a reviewer"
    # Empty optional answers are left out: Argilla refuses empty text.
    assert {r.question_name: r.value for r in built.responses} == {"verdict": "reject", "category": "wrong-action"}
    assert {r.user_id for r in built.responses} == {user}
    assert to_review_record(ReviewRecord("item-2", "", None, "flagged")).fields["content"] == "_(empty)_"
    with pytest.raises(ValueError, match="unknown verdict"):
        ReviewRecord("item-3", "x", None, "flagged", answer=ReviewAnswer("maybe"))


def test_parse_review_response():
    values = {"verdict": {"value": "edit"}, "category": {"value": "pii"}, "note": {"value": "  "},
              "edited_content": {"value": "Fixed."}}
    parsed = parse_review_response("item-1", "ann", {"id": "r1", "status": "submitted", "values": values,
                                                     "updated_at": "2024-05-01T10:00:00"})
    assert parsed.answer == ReviewAnswer("edit", "pii", None, "Fixed.")
    assert parsed.responded_at == datetime(2024, 5, 1, 10, tzinfo=UTC) and parsed.response_id == "r1"
    discarded = parse_review_response("item-1", "ann", {"status": "discarded", "values": values,
                                                        "inserted_at": "2024-05-01T10:00:00"})
    assert discarded.answer is None
    for bad, message in (({"status": "submitted", "values": {}}, "without a verdict"),
                         ({"status": "submitted", "values": {"verdict": {"value": "shrug"}}}, "unknown verdict"),
                         ({"status": "odd"}, "unknown response status")):
        with pytest.raises(ValueError, match=message):
            parse_review_response("item-1", "ann", {**bad, "updated_at": "2024-05-01T10:00:00"})


def test_review_webhook_event_is_routed_by_dataset():
    data = {"id": "r1", "status": "submitted", "values": {"verdict": {"value": "approve"}},
            "updated_at": "2024-05-01T10:00:00", "user": {"username": "ann"},
            "record": {"id": "x", "external_id": "item-1", "dataset": {"name": "arbiter-review"}}}
    event = WebhookEvent("msg", "response.created", "", data)
    assert event_dataset(event) == "arbiter-review"
    assert event_dataset(WebhookEvent("msg", "record.created", "", {})) is None
    dataset, response = parse_review_response_event(event)
    assert (dataset, response.item_id, response.annotator, response.answer.verdict) == (
        "arbiter-review", "item-1", "ann", "serve")  # the old label "approve" is read as "serve"
