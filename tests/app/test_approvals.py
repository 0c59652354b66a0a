"""Approvals: a policy leaves shadow only with an admin's approval (API and CLI), recorded with who and why,
audited; two approvers count distinct people and never the author of the training run; automatic approval
only for decision types that opted in, and only on passed gates."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select

from app.db import session_scope
from app.errors import Conflict, Forbidden
from app.models import ApiKey, AuditEntry, PolicyVersion
from app.services.models import policies as svc
from app.services.models.approvals import ApprovalRules, approve, auto_approve


def _policy(engine, state="shadow", created_by=None) -> str:
    with session_scope(engine) as s:
        row = PolicyVersion(name="p", decision_type="ticket-routing", base_model="fixed", state=state,
                            created_by=created_by)
        s.add(row)
        s.flush()
        return row.id


def _key_id(engine, headers) -> str:
    from app.auth import authenticate

    with Session(engine) as s:
        return authenticate(s, headers["Authorization"].removeprefix("Bearer ")).id


@pytest.mark.both_databases
def test_an_admin_approves_over_the_api_and_the_canary_may_start(client, engine, auth):
    pid = _policy(engine)
    with session_scope(engine) as s, pytest.raises(Conflict, match=r"approval required: 0 of 1") as refused:
        svc.change_state(s, pid, "canary", actor="test", percent=10)
    assert refused.value.status == 409 and refused.value.code == "approval_required"

    assert client.post(f"/v1/policies/{pid}/approvals", json={"reason": "x"}, headers=auth("reviewer")).status_code == 403
    assert client.post("/v1/policies/nope/approvals", json={}, headers=auth("admin")).status_code == 404
    admin = auth("admin")
    r = client.post(f"/v1/policies/{pid}/approvals", json={"reason": "shadow agreed with humans"}, headers=admin)
    assert r.status_code == 201, r.text
    body = r.json()
    who = f"key:{_key_id(engine, admin)}"
    assert body["approved"] and body["counted"] == 1 and body["approvers"] == [who]
    assert [(a["actor"], a["reason"], a["automatic"]) for a in body["approvals"]] == [(who, "shadow agreed with humans", False)]
    listed = client.get(f"/v1/policies/{pid}/approvals", headers=admin).json()
    assert listed["approved"] and len(listed["approvals"]) == 1

    with session_scope(engine) as s:
        svc.change_state(s, pid, "canary", actor="test", percent=10)
    with Session(engine) as s:
        assert s.get(PolicyVersion, pid).state == "canary"
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "policy.approved")).one()
        moved = s.exec(select(AuditEntry).where(AuditEntry.action == "policy.state_changed")).one()
    assert entry.actor == who and entry.subject_id == pid and entry.details["reason"] == "shadow agreed with humans"
    assert moved.details["approvers"] == [who]
    # an active or retired policy has nothing left to approve
    done = _policy(engine, state="active")
    assert client.post(f"/v1/policies/{done}/approvals", json={}, headers=admin).json()["error"]["code"] == "not_approvable"


@pytest.mark.both_databases
def test_two_approvers_are_distinct_and_not_the_author_of_the_run(client, settings, engine, auth):
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    two = settings.model_copy(update={"policy_approvals_required": 2})
    alice, bob = auth("admin"), auth("admin")
    author = f"key:{_key_id(engine, alice)}"
    pid = _policy(engine, created_by=author)
    carol = auth("admin")
    with TestClient(create_app(two)) as c:
        own = c.post(f"/v1/policies/{pid}/approvals", json={"reason": "mine"}, headers=alice)
        assert own.status_code == 403 and own.json()["error"]["code"] == "own_training_run"
        assert c.post(f"/v1/policies/{pid}/approvals", json={"reason": "a"}, headers=bob).json()["counted"] == 1
        again = c.post(f"/v1/policies/{pid}/approvals", json={"reason": "again"}, headers=bob).json()
        assert again["counted"] == 1 and not again["approved"]  # the same approver counts once
    with session_scope(engine) as s, pytest.raises(Conflict, match=r"approval required: 1 of 2"):
        svc.change_state(s, pid, "canary", actor="test", percent=10, approvals=ApprovalRules(required=2))
    with TestClient(create_app(two)) as c:
        assert c.post(f"/v1/policies/{pid}/approvals", json={}, headers=carol).json()["approved"]
    with session_scope(engine) as s:
        svc.change_state(s, pid, "canary", actor="test", percent=10, approvals=ApprovalRules(required=2))
    # with one approver required, the author may approve (the rule is the two-person rule)
    one, other = _policy(engine, created_by="cli"), _policy(engine, state="candidate", created_by="cli")
    with session_scope(engine) as s:
        assert approve(s, one, actor="cli", reason=None, rules=ApprovalRules()).approved
        with pytest.raises(Forbidden):
            approve(s, other, actor="cli", reason=None, rules=ApprovalRules(required=2))


def test_cli_approve_and_list(run_cli, engine):
    pid = _policy(engine)
    out = run_cli("policy", "approve", pid, "--reason", "ok by me", "--actor", "alice", "--json")
    assert out.exit_code == 0, out.output
    body = json.loads(out.output.strip().splitlines()[-1])
    assert body["approved"] and body["approvers"] == ["cli:alice"] and body["approvals"][0]["reason"] == "ok by me"
    listed = json.loads(run_cli("policy", "approvals", pid, "--json").output.strip().splitlines()[-1])
    assert listed["counted"] == 1
    assert "approved" in run_cli("policy", "approvals", pid).output
    assert _canary_cli(run_cli, pid).exit_code == 0


def _canary_cli(run_cli, pid):
    return run_cli("policy", "canary", pid, "--percent", 5, "--json")


@pytest.mark.both_databases
def test_automatic_approval_needs_the_opt_in_and_every_gate_passed(engine):
    opted = ApprovalRules(auto_approve=frozenset({"ticket-routing"}))
    pid = _policy(engine)
    with session_scope(engine) as s:
        assert auto_approve(s, pid, gates={"ope": True}, rules=ApprovalRules()) is None  # not opted in
        assert auto_approve(s, pid, gates={"ope": True, "safety": False}, rules=opted) is None
        assert auto_approve(s, pid, gates={}, rules=opted) is None
    with session_scope(engine) as s, pytest.raises(Conflict):
        svc.change_state(s, pid, "canary", actor="test", percent=10, approvals=opted)
    with session_scope(engine) as s:
        status = auto_approve(s, pid, gates={"ope": True, "safety": True}, rules=opted)
        assert status.approved and status.automatic
    with session_scope(engine) as s:
        # the automatic approval counts only while the decision type opts in
        with pytest.raises(Conflict):
            svc.change_state(s, pid, "canary", actor="test", percent=10, approvals=ApprovalRules())
    with session_scope(engine) as s:
        svc.change_state(s, pid, "canary", actor="test", percent=10, approvals=opted)
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "policy.approved")).one()
    assert entry.actor == "system:gates" and entry.details["gates"] == {"ope": True, "safety": True}


def test_promotion_auto_approves_an_opted_in_decision_type_on_a_passed_gate(settings, engine):
    """The OPE setup of test_policy: a canary that always picks billing passes the gate; with ticket-routing opted
    in, promotion records the automatic approval and goes through; not opted in, it is refused before the gate."""
    import numpy as np

    from tests.app.test_policy import ROUTING, _fixed_loader, _log, _version

    active = _version(engine, "active", 1.0, favourite="sales")
    good = _version(engine, "canary", 0.1, favourite="billing", name="good")
    k = len(ROUTING.action_ids)
    for a in np.random.default_rng(0).choice(ROUTING.action_ids, size=300):
        _log(engine, active, 1, 0.9 if a == "billing" else 0.1, action=str(a), propensity=1.0 / k)
    with pytest.raises(Conflict, match="approval required"):
        svc.promote(settings, engine, good, actor="test", loader=_fixed_loader, min_effective_sample_size=50)
    opted = settings.model_copy(update={"policy_auto_approve": "ticket-routing, content"})
    out = svc.promote(opted, engine, good, actor="test", loader=_fixed_loader, min_effective_sample_size=50)
    assert out["gate"]["passed"] and out["changed"][0]["state"] == "active"
    with Session(engine) as s:
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "policy.approved")).one()
        assert entry.actor == "system:gates" and s.exec(select(ApiKey)).first() is None


@pytest.mark.both_databases
def test_a_rollback_withdraws_the_approvals(engine):
    """Approved, canaried, rolled back (to candidate): going back to canary needs a new approval."""
    pid = _policy(engine)
    with session_scope(engine) as s:
        approve(s, pid, actor="key:a", reason="first look", rules=ApprovalRules())
        svc.change_state(s, pid, "canary", actor="test", percent=10)
    with session_scope(engine) as s:
        svc.rollback(s, pid, actor="test", reason="worse")
    with session_scope(engine) as s, pytest.raises(Conflict, match=r"approval required: 0 of 1"):
        svc.change_state(s, pid, "canary", actor="test", percent=10)
    with session_scope(engine) as s:
        approve(s, pid, actor="key:a", reason="fixed", rules=ApprovalRules())
        svc.change_state(s, pid, "canary", actor="test", percent=10)
