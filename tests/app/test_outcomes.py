"""One outcome per decision: the first stands (409 for a second), an explicit correction replaces it (audited),
and metrics, the canary check and OPE read that one reward; `arbiter ope --json` stays valid JSON on thin logs."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.db import session_scope
from app.models import AuditEntry, Decision, Label, Outcome, PolicyVersion
from app.services.models import policies as svc
from tests.app.factories import upgrade_to

TICKET = {"subject": "Charged twice", "body": "My card was charged twice.", "customer": {"tier": "standard"}}


def _policy(engine, state="active") -> str:
    with session_scope(engine) as s:
        row = PolicyVersion(name=f"p-{state}", decision_type="ticket-routing", base_model="fixed", state=state,
                            traffic_share=1.0 if state == "active" else 0.1, hyperparams={})
        s.add(row)
        s.flush()
        return row.id


def _decision(engine, policy_id: str) -> str:
    with session_scope(engine) as s:
        d = Decision(decision_type="ticket-routing", policy_version_id=policy_id, context=TICKET, action="billing",
                     proposed_action="billing", propensity=0.5, action_probs={"billing": 0.5})
        s.add(d)
        s.flush()
        return d.id


def _no_nan(name: str):
    raise AssertionError(f"{name} in JSON output")


def _decision_with_outcome(engine, policy_id: str) -> None:
    decision = _decision(engine, policy_id)
    with session_scope(engine) as s:
        s.add(Outcome(decision_id=decision, reward=1.0))


def _uniform_loader(version):
    """A policy with the routing actions that spreads its probability evenly (no model needed)."""
    from policies.decision_types import BUILTIN_DIR, load_decision_type

    routing = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")

    class Uniform:
        actions = routing.action_ids

    return Uniform()


@pytest.fixture
def api(app):
    with TestClient(app) as c:
        yield c


@pytest.mark.both_databases
def test_second_outcome_is_refused_and_a_correction_replaces_the_first(api, auth, engine):
    """Before: a second, contradictory outcome answered 201 and both rewards were averaged into metrics and OPE."""
    policy = _policy(engine)
    decision = _decision(engine, policy)
    headers = auth("app")
    url = f"/v1/decisions/{decision}/outcome"
    first = api.post(url, json={"reward": 1.0, "feedback": {"resolved": True}}, headers=headers)
    assert first.status_code == 201 and first.json()["corrected_at"] is None
    second = api.post(url, json={"reward": 0.0}, headers=headers)
    assert second.status_code == 409 and second.json()["error"]["code"] == "outcome_exists"
    assert "correction" in second.json()["error"]["message"]
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Outcome)).one() == 1
        assert svc.logged_decisions(s, "ticket-routing", None)[0][1] == 1.0  # OPE's view: the first stands
        assert svc._arm(s, policy).outcomes == 1

    no_reason = api.post(url, json={"reward": 0.0, "correction": True}, headers=headers)
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["error"]["message"]
    stray = api.post(url, json={"reward": 0.0, "reason": "typo"}, headers=headers)
    assert stray.status_code == 422
    fixed = api.post(url, json={"reward": 0.0, "feedback": {"resolved": False}, "correction": True,
                                "reason": "the ticket was reopened"}, headers=headers)
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["id"] == first.json()["id"] and fixed.json()["reward"] == 0.0 and fixed.json()["corrected_at"]
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(Outcome)).one() == 1
        assert svc.logged_decisions(s, "ticket-routing", None)[0][1] == 0.0
        arm = svc._arm(s, policy)
        assert (arm.outcomes, arm.reward_sum) == (1, 0.0)
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "outcome.corrected")).all()
    assert entry.subject_id == first.json()["id"]
    assert entry.details == {"decision_id": decision, "reward_before": 1.0, "reward": 0.0,
                             "reason": "the ticket was reopened", "labels_withdrawn": 0}

    other = _decision(engine, policy)
    nothing = api.post(f"/v1/decisions/{other}/outcome", json={"reward": 1.0, "correction": True, "reason": "x"},
                       headers=headers)
    assert nothing.status_code == 404


def test_duplicate_outcomes_are_rejected_by_the_store(engine):
    """The rule holds below the service too (a unique index), so two racing first outcomes cannot both land."""
    decision = _decision(engine, _policy(engine))
    with session_scope(engine) as s:
        s.add(Outcome(decision_id=decision, reward=1.0))
    with pytest.raises(sa.exc.IntegrityError), session_scope(engine) as s:
        s.add(Outcome(decision_id=decision, reward=0.0))


@pytest.mark.both_databases
def test_migration_keeps_the_first_of_duplicate_outcomes(settings):
    """A store written before the rule may hold several outcomes per decision: upgrading keeps the earliest."""
    from app.db import get_engine, upgrade_schema

    engine = get_engine(settings)
    upgrade_to(engine, "0003")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO decision (id, decision_type, safety_verdict, context, action_probs, "
                             "safety_details, latency_ms, created_at) VALUES ('d1', 'ticket-routing', 'allow', '{}', "
                             "'{}', '{}', 0, '2026-01-01 00:00:00')"))
        for oid, reward, at in (("o2", 0.0, "2026-01-02"), ("o1", 1.0, "2026-01-01"), ("o3", 0.5, "2026-01-03")):
            conn.execute(sa.text("INSERT INTO outcome (id, decision_id, reward, feedback, created_at) "
                                 f"VALUES ('{oid}', 'd1', {reward}, '{{}}', '{at} 00:00:00')"))
    upgrade_schema(engine)
    with Session(engine) as s:
        assert [(o.id, o.reward) for o in s.exec(select(Outcome)).all()] == [("o1", 1.0)]


def test_ope_json_is_valid_on_an_empty_slice_and_warns_on_a_small_one(run_cli, engine, monkeypatch):
    """Before: one logged decision gave DR = NaN (its reward model was fitted on an empty fold, with numpy's
    'Mean of empty slice' warning), `--json` printed NaN, and nothing said n=1 is too few."""
    import warnings

    from policies.ope import LoggedDecisions, evaluate

    policy = _policy(engine)

    empty = run_cli("ope", "--policy", policy, "--json")
    assert empty.exit_code == 2 and json.loads(empty.stdout.strip().splitlines()[-1])["error"]["code"] == "no_logs"
    _decision_with_outcome(engine, policy)
    monkeypatch.setattr(svc, "_runtime_loader", lambda settings: _uniform_loader)
    monkeypatch.setattr(svc, "_target_probabilities", lambda policy, contexts, masks: [
        {a: 1 / len(policy.actions) for a in policy.actions} for _ in contexts])
    one = run_cli("ope", "--policy", policy, "--bootstrap", 20, "--json")
    assert one.exit_code == 0, one.output
    out = json.loads(one.stdout.strip().splitlines()[-1], parse_constant=_no_nan)
    assert out["n"] == 1 and "only 1 logged decision" in out["warnings"][0]

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning fails the test
        report = evaluate(LoggedDecisions([0], [0.5], [1.0], [[1.0, 0.0]]), n_bootstrap=50)
    text = json.dumps(report.as_dict(), allow_nan=False)
    # q fitted in-sample predicts r=1 for both actions, so DR is its direct term: 1 (IPS: w r = 2)
    assert json.loads(text)["estimates"]["dr"]["value"] == pytest.approx(1.0)
    assert "only 1 logged decision" in report.warnings[0]
    big = evaluate(LoggedDecisions([0] * 40, [0.5] * 40, [1.0] * 40, [[1.0, 0.0]] * 40), n_bootstrap=50)
    assert big.warnings == []


@pytest.mark.both_databases
def test_a_correction_withdraws_the_preference_labels_of_the_old_reward(engine):
    """Outcome labels (`labels_from_outcomes`) prefer a decision's action when its reward was good; once the
    reward is corrected to bad, the label it produced must not stay in the training data."""
    from app.services.labels.outcome_labels import labels_from_outcomes
    from app.services.serving.decisions import record_outcome
    from policies.decision_types import BUILTIN_DIR, load_decision_type

    routing = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")
    decision = _decision(engine, _policy(engine))
    with session_scope(engine) as s:
        s.get(Decision, decision).action_probs = {a: 1 / len(routing.action_ids) for a in routing.action_ids}
        record_outcome(s, decision, 1.0, {}, actor="test")
    with session_scope(engine) as s:
        assert labels_from_outcomes(s, routing) == 1
    with session_scope(engine) as s:
        record_outcome(s, decision, 0.0, {}, actor="test", correction=True, reason="refund was reversed")
    with session_scope(engine) as s:
        assert s.exec(select(func.count()).select_from(Label).where(Label.source == "outcome")).one() == 0
        assert labels_from_outcomes(s, routing) == 0  # a reward of 0 prefers nothing
        [entry] = s.exec(select(AuditEntry).where(AuditEntry.action == "outcome.corrected")).all()
    assert entry.details["labels_withdrawn"] == 1
