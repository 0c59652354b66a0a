"""Language coverage on the decision path: a ticket no moderation provider can read is routed and
marked (the shipped ticket-routing rule set says `uncovered_language: mark`), never silently allowed."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Decision, ReviewItem

THREAT_ES = "Voy a matarte cuando salgas del trabajo, sé dónde vives"


@pytest.mark.both_databases
def test_an_uncovered_ticket_is_served_and_marked(serving_app, auth, engine):
    ticket = {"subject": "Mi pedido", "body": THREAT_ES, "customer": {"tier": "standard", "language": "es"}}
    with TestClient(serving_app) as api:
        r = api.post("/v1/decisions/ticket-routing", json={"context": ticket}, headers=auth("app"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["served"] and body["action"]
    [reason] = [x for x in body["safety"]["input"]["reasons"] if x["code"] == "language-uncovered"]
    assert reason["outcome"] == "allow" and "'es'" in reason["message"]
    with Session(engine) as s:
        [row] = s.exec(select(Decision)).all()
        assert s.exec(select(ReviewItem)).all() == []  # marked, not queued for a reviewer
    coverage = row.safety_details["input"]["language_coverage"]
    assert (coverage["status"], coverage["language"]) == ("none", "es")


def test_an_english_ticket_is_covered(serving_app, auth, engine):
    ticket = {"subject": "Charged twice", "body": "My card was charged twice for the May invoice.",
              "customer": {"tier": "standard", "language": "en"}}
    with TestClient(serving_app) as api:
        body = api.post("/v1/decisions/ticket-routing", json={"context": ticket}, headers=auth("app")).json()
    assert "language-uncovered" not in [x["code"] for x in body["safety"]["input"]["reasons"]]
    with Session(engine) as s:
        [row] = s.exec(select(Decision)).all()
    assert row.safety_details["input"]["language_coverage"]["status"] == "full"
