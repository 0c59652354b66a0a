"""The review queue mirrored to Argilla: push pending items, reviewers answer in Argilla (through the
HTTP endpoints the UI calls, with the reviewer's key), pull the answers into verdicts through the
same `review.decide` path as the API, close records of items decided elsewhere, the webhook, and
`arbiter review sync`.

Uses the session's embedded Argilla (`tests.labeling.live_argilla`) and the test store fixtures;
review items are made the way the decision path makes them (`tests.app.test_review.flagged`).
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid

import httpx
import pytest
from sqlmodel import Session, func, select

from app.db import session_scope
from app.models import AuditEntry, Candidate, Comparison, Label, ReviewItem
from app.services.argilla import open_client, store_webhook_secret
from app.services.labels.argilla_sync import dataset_spec, push_comparisons
from app.services.review import queue as review
from app.services.review.argilla_sync import (
    pull_review_verdicts,
    push_review_items,
    review_dataset_spec,
)
from labeling.argilla import ArgillaConnection
from safety import SafetyLayer
from tests.app.test_argilla_sync import _signed
from tests.app.test_review import LEAKY, RUDE, TICKET, flagged

BETTER = "I'm sorry for the wait. I'm looking into it now."
RUDER = "Stop whining, you pathetic loser."


@pytest.fixture(scope="module")
def layer() -> SafetyLayer:
    return SafetyLayer.build()


@pytest.fixture
def reviewer(live):
    with httpx.Client(base_url=f"{live.instance.url}/api/v1", timeout=30,
                      headers={"X-Argilla-Api-Key": live.instance.reviewer.api_key}) as http:
        yield http


def _count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def _queue(http: httpx.Client, dataset: str) -> dict[str, dict]:
    """Review item id -> record, for what the reviewer's pending queue shows (as the UI asks for it:
    records this user has not answered and that are not completed)."""
    dataset_id = next(d["id"] for d in http.get("/me/datasets").json()["items"] if d["name"] == dataset)
    body = {"filters": {"and": [
        {"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": ["pending"]},
        {"type": "terms", "scope": {"entity": "record", "property": "status"}, "values": ["pending"]},
    ]}}
    found = http.post(f"/me/datasets/{dataset_id}/records/search", params={"limit": 100}, json=body)
    return {item["record"]["external_id"]: item["record"] for item in found.raise_for_status().json()["items"]}


def _answer(http: httpx.Client, record_id: str, **values) -> dict:
    body = {"values": {k: {"value": v} for k, v in values.items()}, "status": "submitted"}
    response = http.post(f"/records/{record_id}/responses", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def _items(engine) -> dict[str, ReviewItem]:
    with Session(engine) as s:
        return {i.id: i for i in s.exec(select(ReviewItem))}


def test_push_answer_pull_close_and_repull(engine, argilla_settings, reviewer, layer):
    # a: edited, b: rejected (pairs with a's edit: same context), c: approved, d: an invalid edit,
    # e: decided in Arbiter with nobody answering in Argilla, f: decided in Arbiter AND answered there.
    a = flagged(engine, layer, "content", {"message": "you never answer"}, text=RUDE)
    b = flagged(engine, layer, "content", {"message": "you never answer"}, text=RUDER)
    c = flagged(engine, layer, "ticket-routing", TICKET, action="billing")
    d = flagged(engine, layer, "content", {"message": "where is my invoice"}, text=LEAKY)
    e = flagged(engine, layer, "content", {"message": "hello?"}, text=RUDE)
    f = flagged(engine, layer, "content", {"message": "anyone?"}, text=RUDE)
    client = open_client(ArgillaConnection(argilla_settings.argilla_api_url, argilla_settings.argilla_api_key))
    spec = review_dataset_spec(argilla_settings)

    first = push_review_items(engine, client, spec, actor="test")
    assert (first.pending, first.pushed, first.already_present, first.closed) == (6, 6, 0, 0)
    again = push_review_items(engine, client, spec, actor="test")
    assert (again.pushed, again.already_present, again.closed) == (0, 6, 0)  # nothing new
    (audit,) = _audit(engine, "argilla.review_pushed")
    assert audit.details["review_item_ids"] == [a, b, c, d, e, f]

    queue = _queue(reviewer, spec.name)
    assert set(queue) == {a, b, c, d, e, f}
    ticket = queue[c]["fields"]
    assert ticket["decision"].startswith("**ticket-routing**, escalated")
    assert ticket["content"] == "billing"
    assert "- **subject:** Refund" in ticket["context"] and "  - **tier:** standard" in ticket["context"]
    assert ticket["reasons"].startswith("- **large-refund-review**")

    with session_scope(engine) as s:  # decided in Arbiter after the push (the API path)
        review.decide(s, e, "reject", reviewer="key:lead", category="harassment", note="rude")
        review.decide(s, f, "approve", reviewer="key:lead")

    _answer(reviewer, queue[a]["id"], verdict="edit", category="harassment", note="insulting",
            edited_content=BETTER)
    _answer(reviewer, queue[b]["id"], verdict="withhold", category="harassment", note="worse")
    _answer(reviewer, queue[c]["id"], verdict="serve")
    invalid = _answer(reviewer, queue[d]["id"], verdict="edit", category="pii")  # no corrected output
    _answer(reviewer, queue[f]["id"], verdict="withhold", category="other")

    pulled = pull_review_verdicts(engine, client, spec)
    assert (pulled.responses, pulled.applied, pulled.unchanged, pulled.errors) == (5, 3, 0, [])
    assert len(pulled.invalid) == 1 and pulled.invalid[0].startswith(f"{d}: reviewer's answer was not applied")
    assert "edited_content" in pulled.invalid[0]
    assert len(pulled.already_decided) == 1 and pulled.already_decided[0].startswith(f"{f}: reviewer answered 'withhold'")
    assert pulled.comparisons == 2

    items = _items(engine)
    assert [(items[i].status, items[i].category, items[i].note, items[i].reviewer) for i in (a, b, c)] == [
        ("edited", "harassment", "insulting", "argilla:reviewer"),
        ("rejected", "harassment", "worse", "argilla:reviewer"),
        ("approved", "safe", None, "argilla:reviewer"),
    ]
    assert items[a].edited_content == BETTER
    assert items[d].status == "pending"  # refused, not applied
    assert (items[f].status, items[f].reviewer) == ("approved", "key:lead")  # not overwritten
    decided = {x.subject_id: x for x in _audit(engine, "review.decided")}
    assert {i: (decided[i].actor, decided[i].details["verdict"]) for i in (a, b, c)} == {
        a: ("argilla:reviewer", "edit"), b: ("argilla:reviewer", "withhold"), c: ("argilla:reviewer", "serve")}
    # The training data is what an API verdict makes: the edit over the original, and over the
    # other output of the same task a reviewer rejected.
    with Session(engine) as s:
        pairs = [(s.get(Candidate, cmp.candidate_a_id).content, s.get(Candidate, cmp.candidate_b_id).content)
                 for cmp in s.exec(select(Comparison).where(Comparison.source == "reviewer"))]
        producers = {lb.producer for lb in s.exec(select(Label).where(Label.source == "reviewer"))}
    assert sorted(pairs) == sorted([(BETTER, RUDE), (BETTER, RUDER)])
    assert producers == {"argilla:reviewer"}

    # Pulling again changes nothing and still reports what was not applied.
    repull = pull_review_verdicts(engine, client, spec)
    assert (repull.applied, repull.unchanged, len(repull.invalid), len(repull.already_decided)) == (0, 3, 1, 1)
    assert len(_audit(engine, "review.decided")) == 5 and _count(engine, Comparison) == 2

    # The next push closes what was decided: e gets Arbiter's verdict as the syncing user's answer,
    # so it leaves the reviewer's queue; the others already had an answer and only show the status.
    closing = push_review_items(engine, client, spec, actor="test")
    assert (closing.pending, closing.pushed, closing.already_present, closing.closed) == (1, 0, 1, 5)
    assert push_review_items(engine, client, spec, actor="test").closed == 0
    assert set(_queue(reviewer, spec.name)) == set()  # e too, which nobody answered in Argilla
    records = {r["external_id"]: r for r in client.records_json(client.find_dataset(spec), include_responses=True)}
    assert records[e]["status"] == "completed" and records[e]["metadata"]["arbiter_status"] == "rejected"
    (mirror,) = records[e]["responses"]
    assert mirror["values"]["verdict"]["value"] == "withhold" and mirror["values"]["category"]["value"] == "harassment"
    assert records[a]["metadata"]["arbiter_status"] == "edited" and len(records[a]["responses"]) == 1
    assert records[d]["metadata"]["arbiter_status"] == "pending"

    # Arbiter's own answer is not a conflict; the reviewer fixes the invalid one, which now applies.
    fixed = reviewer.put(f"/responses/{invalid['id']}", json={"status": "submitted", "values": {
        "verdict": {"value": "edit"}, "category": {"value": "pii"},
        "edited_content": {"value": "I forwarded it to our billing team for you."}}})
    assert fixed.status_code == 200, fixed.text
    last = pull_review_verdicts(engine, client, spec)
    assert (last.applied, last.unchanged, last.invalid, len(last.already_decided)) == (1, 4, [], 1)
    assert _items(engine)[d].status == "edited"


def _audit(engine, action: str) -> list[AuditEntry]:
    with Session(engine) as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)))


def test_annotators_cannot_open_or_decide_the_review_dataset(engine, argilla_settings, reviewer, live, layer):
    """Before: the review dataset lived in the annotators' workspace, so the embedded Argilla's annotator user
    could open it and submit verdicts, and no reviewer user existed. Now the API's role rule holds in Argilla."""
    from tests.app.test_argilla_sync import _seed

    item = flagged(engine, layer, "content", {"message": "hi"}, text=RUDE)
    client = open_client(ArgillaConnection(argilla_settings.argilla_api_url, argilla_settings.argilla_api_key))
    push_review_items(engine, client, review_dataset_spec(argilla_settings))
    _seed(engine, 1)
    push_comparisons(engine, client, dataset_spec(argilla_settings), limit=1)
    with httpx.Client(base_url=f"{live.instance.url}/api/v1", timeout=30,
                      headers={"X-Argilla-Api-Key": live.instance.annotator.api_key}) as annotator:
        visible = {d["name"] for d in annotator.get("/me/datasets").raise_for_status().json()["items"]}
        assert argilla_settings.argilla_dataset in visible  # annotators still label preferences
        assert argilla_settings.argilla_review_dataset not in visible
        record = _queue(reviewer, argilla_settings.argilla_review_dataset)[item]
        assert annotator.get(f"/records/{record['id']}").status_code == 403
        refused = annotator.post(f"/records/{record['id']}/responses",
                                 json={"values": {"verdict": {"value": "serve"}}, "status": "submitted"})
        assert refused.status_code == 403, refused.text
    reviewer_sees = {d["name"] for d in reviewer.get("/me/datasets").json()["items"]}
    assert argilla_settings.argilla_review_dataset in reviewer_sees and argilla_settings.argilla_dataset not in reviewer_sees
    _answer(reviewer, record["id"], verdict="withhold", safety_layer="right", category="harassment")
    assert pull_review_verdicts(engine, client, review_dataset_spec(argilla_settings)).applied == 1
    assert (_items(engine)[item].reviewer, _items(engine)[item].safety_layer) == ("argilla:reviewer", "right")

    spec = review_dataset_spec(argilla_settings)
    assert push_review_items(engine, client, spec).closed == 1  # the record shows the verdict

    # An admin reopens it: the record shows "pending" again and the old answer is not applied again.
    with session_scope(engine) as s:
        review.reopen(s, item, actor="key:admin", reason="it is hate, not harassment")
    assert push_review_items(engine, client, spec).reopened == 1
    assert reviewer.get(f"/records/{record['id']}").json()["metadata"]["arbiter_status"] == "pending"
    again = pull_review_verdicts(engine, client, spec)
    assert (again.applied, again.superseded) == (0, 1) and _items(engine)[item].status == "pending"


def test_cli_review_sync(engine, argilla_settings, reviewer, layer, run_cli, monkeypatch):
    item = flagged(engine, layer, "content", {"message": "hi"}, text=RUDE)
    for name in ("argilla_api_url", "argilla_api_key", "argilla_workspace", "argilla_review_dataset"):
        monkeypatch.setenv(f"ARBITER_{name.upper()}", getattr(argilla_settings, name))
    first = run_cli("review", "sync", "--json")
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert out["pushed"]["pushed"] == 1 and out["pulled"]["responses"] == 0

    record = _queue(reviewer, argilla_settings.argilla_review_dataset)[item]
    _answer(reviewer, record["id"], verdict="serve", note="banter")
    second = json.loads(run_cli("review", "sync", "--json").stdout)
    assert (second["pulled"]["applied"], second["pushed"]["pushed"], second["pushed"]["closed"]) == (1, 0, 1)
    assert _items(engine)[item].status == "approved"
    text = run_cli("review", "sync")
    assert "0 verdict(s) recorded" in text.stdout and "1 unchanged" in text.stdout


def test_sync_without_argilla_is_a_clear_error(run_cli):
    result = run_cli("review", "sync", "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["code"] == "argilla_not_configured"


# ---------------------------------------------------------------------------- webhook


def _review_event(item_id: str, dataset: str, values: dict, updated_at: str, annotator: str = "rev") -> dict:
    return {"id": f"r-{uuid.uuid4().hex[:6]}", "status": "submitted", "updated_at": updated_at,
            "values": {k: {"value": v} for k, v in values.items()}, "user": {"username": annotator},
            "record": {"id": "x", "external_id": item_id, "dataset": {"name": dataset}}}


def test_webhook_applies_review_answers(client, engine, settings, layer):
    good = flagged(engine, layer, "content", {"message": "hi"}, text=RUDE)
    bad = flagged(engine, layer, "content", {"message": "invoice"}, text=LEAKY)
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    store_webhook_secret(settings, secret)
    dataset, url = settings.argilla_review_dataset, "/v1/labeling/argilla/webhook"

    body, headers = _signed(secret, _review_event(good, dataset, {"verdict": "reject", "category": "harassment"},
                                                  "2024-05-01T10:00:00"), event="response.created")
    applied = client.post(url, content=body, headers=headers)
    assert applied.status_code == 200 and applied.json()["status"] == "applied", applied.text
    assert client.post(url, content=body, headers=headers).json()["status"] == "unchanged"  # a redelivery
    item = _items(engine)[good]
    assert (item.status, item.category, item.reviewer) == ("rejected", "harassment", "argilla:rev")

    other, other_headers = _signed(secret, _review_event(good, dataset, {"verdict": "approve"}, "2024-05-01T11:00:00"))
    conflict = client.post(url, content=other, headers=other_headers).json()
    assert conflict["status"] == "already_decided" and _items(engine)[good].status == "rejected"

    edit, edit_headers = _signed(secret, _review_event(bad, dataset, {"verdict": "edit", "category": "pii"},
                                                       "2024-05-01T12:00:00"))
    refused = client.post(url, content=edit, headers=edit_headers).json()
    assert refused["status"] == "invalid" and "edited_content" in refused["detail"]
    assert _items(engine)[bad].status == "pending"

    unknown, unknown_headers = _signed(secret, _review_event("nope", dataset, {"verdict": "approve"},
                                                             "2024-05-01T12:00:00"))
    assert client.post(url, content=unknown, headers=unknown_headers).status_code == 404
    assert [e.subject_id for e in _audit(engine, "review.decided")] == [good]
