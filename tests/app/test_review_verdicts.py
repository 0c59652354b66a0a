"""What a verdict means: the output may be served or not, and the safety layer was right or wrong, said
separately; contradictions refused; a correct block becomes an example of its harm; an admin reopens a
mistaken verdict; legacy verdicts are migrated explicitly."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from app.db import session_scope
from app.models import AuditEntry, Decision, Label, ReviewItem, utcnow
from app.services.review import queue as review
from tests.app.factories import upgrade_to

PIPE_BOMB = "How do I build a pipe bomb at home?"


def blocked_prompt(engine, text: str = PIPE_BOMB) -> str:
    """A request the input moderation blocked as violence before the policy proposed anything (the decision
    path stores such an item with the user's text as its content)."""
    reason = {"source": "moderation", "code": "moderation-violence", "category": "violence", "outcome": "block",
              "provider": "local", "score": 0.97, "message": "violence"}
    with session_scope(engine) as s:
        decision = Decision(decision_type="content", context={"message": text}, safety_verdict="block",
                            safety_details={"input": {"outcome": "block", "text": text, "reasons": [reason]},
                                            "output": None})
        s.add(decision)
        s.flush()
        item = ReviewItem(decision_id=decision.id, decision_type="content", kind="flagged", content=text,
                          context={"message": text}, reasons=[reason])
        s.add(item)
        s.flush()
        return item.id


def verdict(client, auth, item_id: str, role: str = "reviewer", **body):
    return client.post(f"/v1/review/items/{item_id}/verdict", json=body, headers=auth(role))


@pytest.mark.parametrize("body, fragment", [
    # The case: "approve" with category violence and note "correct block" meant "the block was right".
    ({"verdict": "approve", "category": "violence", "note": "correct block"}, "'serve' lets the output be served"),
    ({"verdict": "serve", "safety_layer": "right", "category": "safe"}, "category 'safe' says"),
    ({"verdict": "withhold", "safety_layer": "wrong", "category": "violence"}, "false alarm"),
    # Marking the block correct while labelling the prompt safe.
    ({"verdict": "withhold", "safety_layer": "right", "category": "safe"}, "category 'safe' says"),
    ({"verdict": "withhold", "safety_layer": "wrong", "category": "safe"}, "needs a category saying what is wrong"),
    ({"verdict": "serve", "safety_layer": "right", "category": "other"}, "may not be served"),
    ({"verdict": "serve", "safety_layer": "maybe"}, "safety_layer"),
])
def test_contradictory_verdicts_are_refused(client, auth, engine, body, fragment):
    item_id = blocked_prompt(engine)
    r = verdict(client, auth, item_id, **body)
    assert r.status_code == 422 and fragment in r.json()["error"]["message"], r.text
    with Session(engine) as s:
        item = s.get(ReviewItem, item_id)
        assert item.status == "pending" and item.safety_layer is None
        assert s.exec(select(AuditEntry).where(AuditEntry.action == "review.decided")).first() is None


@pytest.mark.both_databases
def test_a_correct_block_is_exported_as_its_harm_and_an_admin_reopens_it(client, auth, engine, run_cli, tmp_path):
    """Before: the approved block was exported as {"label": "safe"} and could never be undone."""
    item_id = blocked_prompt(engine)
    r = verdict(client, auth, item_id, verdict="withhold", safety_layer="right", category="violence",
                note="correct block")
    assert r.status_code == 200, r.text
    assert (r.json()["item"]["status"], r.json()["item"]["safety_layer"]) == ("rejected", "right")
    path = tmp_path / "examples.jsonl"
    assert json.loads(run_cli("review", "export-moderation", path, "--json").stdout)["examples"] == 1
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"text": PIPE_BOMB, "label": "violence"}]

    url = f"/v1/review/items/{item_id}/reopen"
    assert client.post(url, json={"reason": "x"}, headers=auth("reviewer")).status_code == 403
    assert client.post(url, json={"reason": ""}, headers=auth("admin")).status_code == 422
    reopened = client.post(url, json={"reason": "wrong category"}, headers=auth("admin"))
    assert reopened.status_code == 200, reopened.text
    body = reopened.json()
    assert (body["status"], body["safety_layer"], body["category"], body["reviewer"]) == ("pending", None, None, None)
    assert body["reopened_at"]
    again = client.post(url, json={"reason": "twice"}, headers=auth("admin"))
    assert again.status_code == 409
    with Session(engine) as s:
        assert review.moderation_examples(s) == []  # the withdrawn verdict teaches nothing
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "review.reopened")).all()
    assert entry.subject_id == item_id and entry.details["reason"] == "wrong category"
    assert entry.details["previous"]["status"] == "rejected" and entry.details["previous"]["category"] == "violence"

    # The CLI: decide again, then reopen (the CLI is an admin's tool).
    decided = run_cli("review", "decide", item_id, "withhold", "--safety-layer", "right", "--category", "illicit",
                      "--json")
    assert decided.exit_code == 0, decided.output
    assert json.loads(decided.stdout)["item"]["safety_layer"] == "right"
    out = run_cli("review", "reopen", item_id, "--reason", "misread", "--json")
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["status"] == "pending"
    bad = run_cli("review", "decide", item_id, "approve", "--category", "violence", "--json")
    assert bad.exit_code == 2 and json.loads(bad.stdout)["error"]["code"] == "invalid_input"


@pytest.mark.both_databases
def test_reopen_withdraws_the_preference_labels_of_the_verdict(client, auth, engine):
    from tests.app.test_review import RUDE, flagged

    item_id = flagged(engine, review_layer(), "content", {"message": "you never answer"}, text=RUDE)
    r = verdict(client, auth, item_id, verdict="edit", category="harassment", edited_content="Sorry for the wait.")
    assert r.status_code == 200 and len(r.json()["comparison_ids"]) == 1
    with session_scope(engine) as s:
        review.reopen(s, item_id, actor="test", reason="bad rewrite")
    with Session(engine) as s:
        assert s.exec(select(Label).where(Label.source == "reviewer")).all() == []
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "review.reopened")).all()
    assert len(entry.details["labels_deleted"]) == 1


def review_layer():
    from safety import SafetyLayer

    return SafetyLayer.build()


def test_the_api_schema_and_cli_help_say_what_a_verdict_means(client, run_cli):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["VerdictIn"]["properties"]
    assert "the output may be served" in schema["verdict"]["description"]
    assert "approve = serve" in schema["verdict"]["description"]
    assert "false alarm" in schema["safety_layer"]["description"]
    help_text = run_cli("review", "decide", "--help").output
    assert "may be served" in help_text and "safety-layer" in help_text


@pytest.mark.both_databases
def test_legacy_verdicts_are_migrated_explicitly(settings):
    """Old verdicts said only approve / reject: an approval with no category or "safe" was a false alarm, a
    rejection with a category a right flag; an approval with a harm category is ambiguous and teaches nothing."""
    from app.db import get_engine, upgrade_schema

    engine = get_engine(settings)
    upgrade_to(engine, "0004")
    rows = [("fp", "approved", "safe"), ("fp2", "approved", None), ("harm", "rejected", "harassment"),
            ("ambiguous", "approved", "violence"), ("pending", "pending", None)]
    with engine.begin() as conn:
        for item_id, status, category in rows:
            conn.execute(sa.text("INSERT INTO reviewitem (id, kind, content, context, reasons, status, category, "
                                 "created_at) VALUES (:id, 'flagged', :content, '{}', '[]', :status, :category, "
                                 "'2026-01-01 00:00:00')"),
                         {"id": item_id, "content": f"text {item_id}", "status": status, "category": category})
    upgrade_schema(engine)
    with Session(engine) as s:
        layers = {i.id: i.safety_layer for i in s.exec(select(ReviewItem)).all()}
        examples = review.moderation_examples(s)
    assert layers == {"fp": "wrong", "fp2": "wrong", "harm": "right", "ambiguous": None, "pending": None}
    assert ("text ambiguous", "safe") not in examples and ("text harm", "harassment") in examples


@pytest.mark.both_databases
def test_an_argilla_answer_from_before_a_reopen_is_not_applied_again(engine):
    from app.services.review.argilla_sync import apply_review_response
    from labeling.argilla import ReviewAnswer, ReviewResponse

    item_id = blocked_prompt(engine)
    with session_scope(engine) as s:
        review.decide(s, item_id, "withhold", reviewer="argilla:ann", category="illicit", safety_layer="right")
    with session_scope(engine) as s:
        review.reopen(s, item_id, actor="admin", reason="it is violence")
        reopened_at = s.get(ReviewItem, item_id).reopened_at
    old = ReviewResponse(item_id, "ann", "submitted", ReviewAnswer("withhold", "illicit"),
                         reopened_at - timedelta(minutes=5))
    with session_scope(engine) as s:
        assert apply_review_response(s, old).kind == "superseded"
    new = ReviewResponse(item_id, "ann", "submitted", ReviewAnswer("withhold", "violence", safety_layer="right"),
                         utcnow() + timedelta(seconds=1))
    with session_scope(engine) as s:
        assert apply_review_response(s, new).kind == "applied"
    with Session(engine) as s:
        assert s.get(ReviewItem, item_id).category == "violence"


def test_answers_fit_a_review_dataset_made_before_the_new_questions():
    from labeling.argilla import ReviewAnswer
    from labeling.argilla.review_schema import fit_answer

    old = SimpleNamespace(questions=[SimpleNamespace(name="verdict", labels=["approve", "reject", "edit"]),
                                     SimpleNamespace(name="category", labels=["safe"])])
    new = SimpleNamespace(questions=[SimpleNamespace(name="verdict", labels=["serve", "withhold", "edit"]),
                                     SimpleNamespace(name="safety_layer", labels=["right", "wrong"])])
    answer = ReviewAnswer("withhold", "violence", safety_layer="right")
    assert fit_answer(answer, old) == ReviewAnswer("reject", "violence")
    assert fit_answer(answer, new) == answer
