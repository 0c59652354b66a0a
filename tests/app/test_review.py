"""The review queue: listing, verdicts over the API and the CLI, and the training data they become.

Review items are made the way the decision path makes them: real safety-layer verdicts on a
decision, stored on a Decision row, and a ReviewItem carrying their reasons."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from app.db import session_scope
from app.models import AuditEntry, Candidate, Comparison, Decision, Label, ReviewItem, Task
from app.services.labels.data_io import export_pairs
from app.services.review import queue as review
from safety import SafetyLayer

RUDE = "Shut up you pathetic loser, nobody wants you here."
LEAKY = "I forwarded it to jo@example.com for you."
TICKET = {
    "subject": "Refund",
    "body": "Please refund my order",
    "customer": {"tier": "standard"},
    "refund_amount": 1500,
}


@pytest.fixture(scope="module")
def layer() -> SafetyLayer:
    return SafetyLayer.build()


def flagged(
    engine,
    layer: SafetyLayer,
    decision_type: str,
    context: dict,
    *,
    text: str | None = None,
    action: str | None = None,
    expect_review: bool = True,
) -> str:
    """Store a decision and its review item as the decision path does; return the item id."""
    verdict_in = layer.check_input(decision_type, context=context)
    verdict_out = layer.check_output(decision_type, context=context, text=text, action=action)
    assert verdict_out.needs_review == expect_review, verdict_out.to_dict()
    with session_scope(engine) as session:
        decision = Decision(
            decision_type=decision_type,
            context=context,
            proposed_output=text,
            proposed_action=action,
            safety_verdict=verdict_out.outcome.value,
            safety_details={"input": verdict_in.to_dict(), "output": verdict_out.to_dict()},
        )
        session.add(decision)
        session.flush()
        item = ReviewItem(
            decision_id=decision.id,
            decision_type=decision_type,
            kind="escalated" if verdict_out.outcome == "escalate" else "flagged",
            content=text if text is not None else action,
            context=context,
            reasons=[r.to_dict() for r in verdict_out.reasons],
        )
        session.add(item)
        session.flush()
        return item.id


def verdict(client, auth, item_id: str, role: str = "reviewer", **body):
    return client.post(f"/v1/review/items/{item_id}/verdict", json=body, headers=auth(role))


def test_list_filters_and_roles(client, auth, engine, layer):
    rude = flagged(engine, layer, "content", {"message": "hi"}, text=RUDE)
    leaky = flagged(engine, layer, "content", {"message": "where is my invoice"}, text=LEAKY)
    ticket = flagged(engine, layer, "ticket-routing", TICKET, action="billing")

    listed = client.get("/v1/review/items", headers=auth("reviewer"))
    assert listed.status_code == 200
    assert [i["id"] for i in listed.json()] == [rude, leaky, ticket]  # oldest first
    by_type = client.get(
        "/v1/review/items", params={"decision_type": "ticket-routing"}, headers=auth("admin")
    )
    assert [i["id"] for i in by_type.json()] == [ticket]
    assert by_type.json()[0]["reasons"][0]["code"] == "large-refund-review"
    escalated = client.get("/v1/review/items", params={"kind": "escalated"}, headers=auth("reviewer")).json()
    assert leaky not in [i["id"] for i in escalated] and ticket in [i["id"] for i in escalated]

    assert verdict(client, auth, leaky, verdict="reject", category="pii").status_code == 200
    pending = client.get("/v1/review/items", headers=auth("reviewer")).json()
    assert [i["id"] for i in pending] == [rude, ticket]
    rejected = client.get("/v1/review/items", params={"status": "rejected"}, headers=auth("reviewer")).json()
    assert [(i["id"], i["category"]) for i in rejected] == [(leaky, "pii")]

    assert client.get("/v1/review/items").status_code == 401
    assert client.get("/v1/review/items", headers=auth("annotator")).status_code == 403
    assert verdict(client, auth, rude, role="app", verdict="approve").status_code == 403
    bad = client.get("/v1/review/items", params={"status": "maybe"}, headers=auth("reviewer"))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_input"


def test_edit_becomes_a_preference_pair_and_is_audited(client, auth, engine, layer):
    item_id = flagged(engine, layer, "content", {"message": "you never answer"}, text=RUDE)
    better = "I'm sorry for the wait. I'm looking into it now."
    r = verdict(
        client, auth, item_id, verdict="edit", category="harassment", note="insulting", edited_content=better
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["item"]["status"] == "edited" and body["item"]["reviewer"].startswith("key:")
    assert len(body["comparison_ids"]) == 1 and body["moderation_examples"] == 2

    with Session(engine) as session:
        comparison = session.get(Comparison, body["comparison_ids"][0])
        task = session.get(Task, comparison.task_id)
        a, b = (
            session.get(Candidate, comparison.candidate_a_id),
            session.get(Candidate, comparison.candidate_b_id),
        )
        (label,) = session.exec(select(Label).where(Label.comparison_id == comparison.id)).all()
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "review.decided")).all()
        pairs = list(export_pairs(session))
    assert (task.kind, task.decision_type, comparison.source) == ("decision", "content", "reviewer")
    assert task.prompt[-1] == {"role": "user", "content": "you never answer"}  # rendered by the decision type
    assert (a.content, b.content) == (better, RUDE)
    assert a.produced_by.startswith("reviewer:key:") and b.produced_by == "policy"
    assert (label.choice, label.source, label.rationale) == ("a", "reviewer", "insulting")
    assert [(e.subject_id, e.details["verdict"], e.details["comparisons"]) for e in audit] == [
        (item_id, "edit", body["comparison_ids"])
    ]
    # The pair flows into the same export the reward model trains from.
    assert [(p.chosen, p.rejected) for p in pairs] == [(better, RUDE)]


def test_reject_waits_for_a_chosen_side_on_the_same_task(client, auth, engine, layer):
    context = dict(TICKET, body="Please refund order 77")
    first = flagged(engine, layer, "ticket-routing", context, action="billing")
    r = verdict(client, auth, first, verdict="reject", category="wrong-action")
    assert r.json()["comparison_ids"] == []  # nothing to prefer over it yet

    # Routing to legal is not flagged by the shipped rules; an item for it stands in for one a
    # reviewer was asked to look at for another reason.
    second = flagged(engine, layer, "ticket-routing", context, action="legal", expect_review=False)
    r = verdict(client, auth, second, verdict="approve", note="legal handles large refunds")
    (comparison_id,) = r.json()["comparison_ids"]
    with Session(engine) as session:
        comparison = session.get(Comparison, comparison_id)
        chosen = session.get(Candidate, comparison.candidate_a_id).content
        rejected = session.get(Candidate, comparison.candidate_b_id).content
    assert (chosen, rejected) == ("legal", "billing")


def test_verdict_errors(client, auth, engine, layer):
    item_id = flagged(engine, layer, "content", {"message": "hi"}, text=LEAKY)
    cases = [
        ({"verdict": "edit", "category": "pii"}, 422, "edited_content"),
        ({"verdict": "approve", "edited_content": "x"}, 422, "edited_content"),
        ({"verdict": "reject"}, 422, "category must be one of"),
        ({"verdict": "reject", "category": "meh"}, 422, "category must be one of"),
        ({"verdict": "shrug"}, 422, "verdict"),
    ]
    for body, status, fragment in cases:
        r = verdict(client, auth, item_id, **body)
        assert r.status_code == status and fragment in r.json()["error"]["message"], (body, r.text)
    assert verdict(client, auth, "nope", verdict="approve").status_code == 404

    assert verdict(client, auth, item_id, verdict="approve").status_code == 200
    again = verdict(client, auth, item_id, verdict="reject", category="pii")
    assert again.status_code == 409 and "already decided (approved" in again.json()["error"]["message"]


def test_moderation_examples_and_retrain(client, auth, engine, layer, settings):
    false_positive = flagged(engine, layer, "content", {"message": "a"}, text=RUDE)
    harassment = flagged(engine, layer, "content", {"message": "b"}, text="You are a worthless idiot.")
    pii = flagged(engine, layer, "content", {"message": "c"}, text=LEAKY)
    verdict(client, auth, false_positive, verdict="approve", note="banter between friends")
    verdict(client, auth, harassment, verdict="reject", category="harassment")
    verdict(client, auth, pii, verdict="reject", category="pii")  # not something the harm classifier learns

    with Session(engine) as session:
        examples = review.moderation_examples(session)
    assert examples == [(RUDE, "safe"), ("You are a worthless idiot.", "harassment")]

    r = client.post("/v1/review/harm-classifier/retrain", headers=auth("reviewer"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["version"], out["n_reviewer_examples"]) == (1, 2)
    assert out["path"].startswith(str(review.harm_classifier_dir(settings)))
    with Session(engine) as session:
        (entry,) = session.exec(
            select(AuditEntry).where(AuditEntry.action == "safety.harm_classifier.retrained")
        ).all()
    assert entry.subject_id == "v1" and entry.details["n_reviewer_examples"] == 2


def test_retrain_without_examples_is_a_clear_error(client, auth):
    r = client.post("/v1/review/harm-classifier/retrain", headers=auth("admin"))
    assert r.status_code == 422 and "no reviewer verdicts" in r.json()["error"]["message"]


def test_cli_list_decide_export(run_cli, engine, layer, tmp_path):
    item_id = flagged(engine, layer, "content", {"message": "hello"}, text=RUDE)

    listed = run_cli("review", "list", "--json")
    assert listed.exit_code == 0, listed.output
    assert [i["id"] for i in json.loads(listed.stdout)["items"]] == [item_id]

    decided = run_cli(
        "review",
        "decide",
        item_id,
        "edit",
        "--category",
        "harassment",
        "--edited",
        "Thanks for writing in!",
        "--reviewer",
        "ana",
        "--json",
    )
    assert decided.exit_code == 0, decided.output
    out = json.loads(decided.stdout)
    assert out["item"]["status"] == "edited" and out["item"]["reviewer"] == "cli:ana"
    assert len(out["comparison_ids"]) == 1

    again = run_cli("review", "decide", item_id, "approve", "--json")
    assert again.exit_code == 2 and json.loads(again.stdout)["error"]["code"] == "conflict"
    assert "already decided" in again.stderr

    path = tmp_path / "examples.jsonl"
    exported = run_cli("review", "export-moderation", path, "--json")
    assert json.loads(exported.stdout)["examples"] == 2
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        {"text": RUDE, "label": "harassment"},
        {"text": "Thanks for writing in!", "label": "safe"},
    ]
