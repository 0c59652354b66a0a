"""The decision API: schema validation, safety masks, idempotency, shadow and canary, outcomes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.db import session_scope
from app.models import AuditEntry, Decision, Outcome, PolicyVersion, ReviewItem

TICKET = {"subject": "Charged twice", "body": "My card was charged twice for the May invoice.",
          "customer": {"tier": "standard", "language": "en"}}


@pytest.fixture
def api(serving_app):
    with TestClient(serving_app) as c:
        yield c


def _decisions(engine) -> list[Decision]:
    with Session(engine) as s:
        return list(s.exec(select(Decision)).all())


def test_routing_decision_is_logged_with_exact_propensity(api, auth, engine):
    r = api.post("/v1/decisions/ticket-routing", json={"context": TICKET, "unit_id": "cust-1"}, headers=auth("app"))
    assert r.status_code == 200, r.text
    body = r.json()
    [row] = _decisions(engine)
    assert body["id"] == row.id and body["served"] and body["action"] == row.action
    assert row.action_probs[row.action] == pytest.approx(body["propensity"])
    assert sum(row.action_probs.values()) == pytest.approx(1.0)
    assert body["safety"]["verdict"] == "allow" and row.rule_set_hash and body["safety"]["rule_set_hash"] == row.rule_set_hash
    with Session(engine) as s:
        assert s.get(PolicyVersion, row.policy_version_id).name == "base-ticket-routing"


def test_legal_ticket_only_goes_to_legal(api, auth, engine):
    ctx = {**TICKET, "body": "I will sue you and my lawyer will call."}
    for i in range(5):
        body = api.post("/v1/decisions/ticket-routing", json={"context": ctx, "unit_id": f"u{i}"}, headers=auth("app")).json()
        assert body["action"] == "legal" and body["propensity"] == pytest.approx(1.0)
        assert "legal-only" in [x["code"] for x in body["safety"]["input"]["reasons"]]
    assert all(set(d.action_probs) == {"legal"} or all(p == 0 for a, p in d.action_probs.items() if a != "legal")
               for d in _decisions(engine))


def test_idempotency_key_returns_the_same_decision(api, auth, engine):
    headers = {**auth("app"), "Idempotency-Key": "req-42"}
    first = api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=headers)
    again = api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.headers.get("Idempotent-Replayed") == "true" and len(_decisions(engine)) == 1
    other = api.post("/v1/decisions/ticket-routing", json={"context": {**TICKET, "subject": "x"}}, headers=headers)
    assert other.status_code == 409 and other.json()["error"]["code"] == "conflict"


@pytest.mark.both_databases
def test_idempotency_keys_are_scoped_per_caller(api, auth, engine):
    """The same Idempotency-Key and body from another API key is another request (Stripe, IETF draft):
    the admin gets a decision of its own, not the app's, and each caller's retry replays its own."""
    app_headers = {**auth("app"), "Idempotency-Key": "shared-key"}
    admin_headers = {**auth("admin"), "Idempotency-Key": "shared-key"}
    mine = api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=app_headers)
    theirs = api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=admin_headers)
    assert mine.status_code == theirs.status_code == 200, theirs.text
    assert theirs.json()["id"] != mine.json()["id"] and "Idempotent-Replayed" not in theirs.headers
    again = api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=admin_headers)
    assert again.json()["id"] == theirs.json()["id"] and again.headers.get("Idempotent-Replayed") == "true"
    # Another caller's key with another body is not a conflict either: it is not that caller's key.
    other = api.post("/v1/decisions/ticket-routing", json={"context": {**TICKET, "subject": "x"}},
                     headers={**auth("app"), "Idempotency-Key": "shared-key"})
    assert other.status_code == 200, other.text
    assert len(_decisions(engine)) == 3


@pytest.mark.parametrize("context,needle", [
    ({"subject": "x", "customer": {"tier": "standard"}}, "body"),
    ({**TICKET, "customer": {"tier": "platinum"}}, "customer/tier"),
])
def test_invalid_context_is_422_and_logs_nothing(api, auth, engine, context, needle):
    r = api.post("/v1/decisions/ticket-routing", json={"context": context}, headers=auth("app"))
    assert r.status_code == 422 and needle in r.json()["error"]["message"]
    assert _decisions(engine) == []


def test_unknown_type_and_roles(api, auth):
    assert api.post("/v1/decisions/nope", json={"context": {}}, headers=auth("app")).status_code == 404
    assert api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=auth("annotator")).status_code == 403
    assert api.post("/v1/decisions/ticket-routing", json={"context": TICKET}).status_code == 401


def _add_version(engine, state: str, share: float = 0.0) -> str:
    with session_scope(engine) as s:
        v = PolicyVersion(name=f"{state}-v", decision_type="ticket-routing", base_model="tiny", state=state, traffic_share=share,
                          hyperparams={"temperature": 0.5})
        s.add(v)
        s.flush()
        return v.id


def test_shadow_decides_but_never_serves(api, auth, engine):
    shadow_id = _add_version(engine, "shadow")
    body = api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=auth("app")).json()
    [row] = _decisions(engine)
    assert row.shadow_policy_version_id == shadow_id and row.shadow_action and 0 < row.shadow_propensity <= 1
    assert body["policy_version_id"] != shadow_id and "shadow" not in str(body)


def test_canary_split_is_sticky(api, auth, engine):
    canary_id = _add_version(engine, "canary", share=0.5)
    seen: dict[str, set[str]] = {}
    for unit in [f"user-{i}" for i in range(12)]:
        for _ in range(2):
            body = api.post("/v1/decisions/ticket-routing", json={"context": TICKET, "unit_id": unit}, headers=auth("app")).json()
            seen.setdefault(unit, set()).add(body["policy_version_id"])
    assert all(len(v) == 1 for v in seen.values())
    served = {next(iter(v)) for v in seen.values()}
    assert canary_id in served and len(served) == 2


def test_outcome_recorded(api, auth, engine):
    decision = api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=auth("app")).json()
    r = api.post(f"/v1/decisions/{decision['id']}/outcome", json={"reward": 1.0, "feedback": {"resolved": True}}, headers=auth("app"))
    assert r.status_code == 201 and r.json()["reward"] == 1.0
    assert api.post("/v1/decisions/nope/outcome", json={"reward": 1}, headers=auth("app")).status_code == 404
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Outcome)).one() == 1
    assert api.get(f"/v1/decisions/{decision['id']}", headers=auth("reviewer")).json()["id"] == decision["id"]


def test_rule_sets_recorded_and_audited_once(serving_app, engine):
    from app.services.serving.stack import prepare_store

    prepare_store(engine, serving_app.state.serving)  # a second start changes nothing
    with Session(engine) as s:
        entries = s.exec(select(AuditEntry).where(AuditEntry.action == "ruleset.changed")).all()
        assert {e.details["decision_type"] for e in entries} == {"content", "ticket-routing"} and len(entries) == 2


def test_large_refund_to_billing_escalates_to_review(api, auth, engine):
    """Every team but billing is at capacity (masked), so billing is proposed; the output-stage rule
    then escalates the refund above 1000 and nothing is served."""
    full = {team: {"load": 10, "capacity": 10} for team in ("technical", "account", "shipping", "sales", "legal")}
    ctx = {**TICKET, "refund_amount": 5000, "teams": {**full, "billing": {"load": 1, "capacity": 10}}}
    billing = [api.post("/v1/decisions/ticket-routing", json={"context": ctx, "unit_id": f"r{i}"}, headers=auth("app")).json()
               for i in range(3)]
    for o in billing:
        assert o["safety"]["output"]["action"] == "billing" and o["propensity"] == pytest.approx(1.0)
        assert set(o["safety"]["input"]["masked_actions"]) == set(full)
        assert o["safety"]["verdict"] == "escalate" and o["action"] is None and not o["served"] and o["review_item_id"]
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(ReviewItem)).one() == len(billing)


def test_decisions_and_chat_run_their_model_on_the_model_thread(api, auth, serving_app, monkeypatch):
    """The API path loads and scores through the runtime's one model thread, never the event loop or another pool."""
    import threading

    backend = serving_app.state.serving.runtime.backend_factory(None)
    seen: list[str] = []
    for name in ("completion_logprobs", "generate"):
        original = getattr(backend, name)

        def spy(*args, _original=original, **kwargs):
            seen.append(threading.current_thread().name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(backend, name, spy)
    assert api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=auth("app")).status_code == 200
    chat = api.post("/v1/chat/completions", headers=auth("app"),
                    json={"model": "arbiter", "messages": [{"role": "user", "content": "Where is my parcel?"}], "max_tokens": 4})
    assert chat.status_code == 200, chat.text
    assert len(seen) >= 2 and all(name.startswith("arbiter-model") for name in seen), seen
