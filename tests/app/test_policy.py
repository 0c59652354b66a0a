"""Policy rollout through the CLI and the store: validated, audited transitions; canary gate; OPE; shadow."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.db import session_scope
from app.models import AuditEntry, Decision, Outcome, PolicyVersion
from app.services.models import policies as svc
from policies.action_policy import ActionPolicy
from policies.decision_types import BUILTIN_DIR, load_decision_type

ROUTING = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")
TICKET = {"subject": "Charged twice", "body": "My card was charged twice.", "customer": {"tier": "standard"}}


class FixedBackend:
    """A policy model whose log-likelihoods are fixed per action: makes policies distinguishable in tests."""

    name = "fixed"
    end_of_turn = "<eot>"

    def __init__(self, favourite: str):
        self.logprobs = [0.0 if a == favourite else -30.0 for a in ROUTING.action_ids]

    def render(self, messages):
        return "\n".join(m["content"] for m in messages)

    def completion_logprobs(self, prompts, completions):
        return np.tile(self.logprobs, (len(prompts), 1))

    def generate(self, prompts, **kwargs):
        return ["" for _ in prompts]


def _version(engine, state="candidate", share=0.0, name="p", favourite="billing", **extra) -> str:
    with session_scope(engine) as s:
        row = PolicyVersion(name=name, decision_type="ticket-routing", base_model="fixed", state=state,
                            traffic_share=share, hyperparams={"favourite": favourite, "epsilon": 0.0, **extra})
        s.add(row)
        s.flush()
        return row.id


def _approve(engine, policy_id: str, actor: str = "key:test-admin") -> None:
    """An admin's approval, as every policy needs before it leaves shadow (tests/app/test_approvals.py)."""
    from app.services.models.approvals import ApprovalRules, approve

    with session_scope(engine) as s:
        approve(s, policy_id, actor=actor, reason="test", rules=ApprovalRules())


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def _error(result) -> dict:
    assert result.exit_code == 2, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])["error"]


def _audit(engine, action):
    with Session(engine) as s:
        return list(s.exec(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.seq)).all())


def test_lifecycle_through_the_cli_is_validated_and_audited(run_cli, engine):
    old = _version(engine, "active", 1.0, name="old")
    new = _version(engine, name="new")
    assert _json(run_cli("policy", "shadow", new, "--json"))["changed"][0]["state"] == "shadow"
    refused = _error(run_cli("policy", "canary", new, "--percent", 10, "--json"))  # leaving shadow needs an approval
    assert refused["code"] == "approval_required" and refused["message"].startswith("approval required: 0 of 1")
    assert _json(run_cli("policy", "approve", new, "--reason", "shadow looked right", "--json"))["approved"]
    out = _json(run_cli("policy", "canary", new, "--percent", 10, "--json"))
    assert out["changed"][0] == {"id": new, "name": "new", "state": "canary", "traffic_share": pytest.approx(0.1)}
    run_cli("policy", "canary", new, "--percent", 25, "--json")  # widening the same canary
    assert _error(run_cli("policy", "canary", old, "--percent", 10, "--json"))["code"] == "invalid_transition"
    # free-text gate aside, a routing policy without logged rewards cannot pass the OPE gate ...
    refused = _error(run_cli("policy", "promote", new, "--json"))
    assert refused["code"] == "gate_failed" and "no logged decisions" in refused["message"]
    # ... unless forced, which is recorded
    promoted = _json(run_cli("policy", "promote", new, "--force", "--json"))
    assert promoted["forced"] and {c["id"]: c["state"] for c in promoted["changed"]} == {new: "active", old: "retired"}
    listing = {p["id"]: p for p in _json(run_cli("policy", "list", "--json"))["policies"]}
    assert listing[new]["traffic_share"] == 1.0 and listing[old]["traffic_share"] == 0.0

    restored = _json(run_cli("policy", "rollback", new, "--reason", "bad metrics", "--json"))
    assert {c["id"]: c["state"] for c in restored["changed"]} == {new: "retired", old: "active"}
    changes = _audit(engine, "policy.state_changed")
    assert [(e.subject_id, e.details["to"]) for e in changes] == [
        (new, "shadow"), (new, "canary"), (new, "active"), (old, "retired")]
    assert changes[2].details["forced"] is True and changes[3].details["superseded_by"] == new
    assert _audit(engine, "policy.traffic_changed")[0].details["to"] == pytest.approx(0.25)
    rollbacks = _audit(engine, "policy.rolled_back")
    assert {e.subject_id for e in rollbacks} == {new, old} and rollbacks[0].details["rollback_reason"] == "bad metrics"


def _log(engine, version_id, n, reward, verdict="allow", action="billing", propensity=0.5):
    with session_scope(engine) as s:
        for i in range(n):
            d = Decision(decision_type="ticket-routing", policy_version_id=version_id, context=TICKET, action=action,
                         proposed_action=action, propensity=propensity, safety_verdict=verdict,
                         action_probs={action: propensity})
            s.add(d)
            s.flush()
            if reward is not None:
                s.add(Outcome(decision_id=d.id, reward=reward))


def test_canary_is_rolled_back_automatically_when_worse(run_cli, engine):
    active = _version(engine, "active", 1.0)
    canary = _version(engine, "canary", 0.1)
    _log(engine, active, 60, 0.9)
    _log(engine, canary, 30, 0.9)
    ok = _json(run_cli("policy", "check-canary", "ticket-routing", "--min-decisions", 20, "--min-outcomes", 20, "--json"))
    assert not ok["rolled_back"]
    _log(engine, canary, 30, 0.2)  # the canary's mean reward drops to 0.55
    out = _json(run_cli("policy", "check-canary", "ticket-routing", "--min-decisions", 20, "--min-outcomes", 20, "--json"))
    assert out["rolled_back"] and "mean reward" in out["reasons"][0]
    with Session(engine) as s:
        assert s.get(PolicyVersion, canary).state == "candidate" and s.get(PolicyVersion, active).state == "active"
    assert _audit(engine, "policy.rolled_back")[-1].actor == "system:canary-gate"


def test_check_canary_reads_the_configured_thresholds(run_cli, engine, monkeypatch):
    """`check-canary` without flags uses ARBITER_CANARY_* (the automatic rollback's rule), not its own defaults:
    with 20/20 configured, 40 canary outcomes at mean 0.55 vs 0.9 are enough data to roll it back."""
    from app.settings import get_settings

    monkeypatch.setenv("ARBITER_CANARY_MIN_DECISIONS", "20")
    monkeypatch.setenv("ARBITER_CANARY_MIN_OUTCOMES", "20")
    monkeypatch.setenv("ARBITER_CANARY_MAX_REWARD_DROP", "0.5")
    monkeypatch.setenv("ARBITER_CANARY_METHOD", "fixed")  # the raw-delta rule, where the drop is a rollback threshold
    active = _version(engine, "active", 1.0)
    canary = _version(engine, "canary", 0.1)
    _log(engine, active, 60, 0.9)
    _log(engine, canary, 20, 0.9)
    _log(engine, canary, 20, 0.2)
    kept = _json(run_cli("policy", "check-canary", "ticket-routing", "--json"))
    assert kept["thresholds"] == {"min_decisions": 20, "min_outcomes": 20, "max_block_rate_increase": 0.05,
                                  "max_reward_drop": 0.5, "method": "fixed", "alpha": 0.05}
    assert kept["enough_data"] and not kept["rolled_back"]  # a drop of 0.35 is within the configured 0.5
    monkeypatch.setenv("ARBITER_CANARY_MAX_REWARD_DROP", "0.1")
    get_settings.cache_clear()
    out = _json(run_cli("policy", "check-canary", "ticket-routing", "--json"))
    assert out["rolled_back"] and "mean reward" in out["reasons"][0]


def _fixed_loader(version: PolicyVersion) -> ActionPolicy:
    return ActionPolicy(ROUTING, FixedBackend(version.hyperparams["favourite"]), temperature=1.0, epsilon=0.0)


def test_ope_and_promotion_gate_over_logged_decisions(settings, engine):
    """Logs: a uniform logging policy; 'billing' earns 0.9, anything else 0.1. A policy that always picks
    billing is worth ~0.9, one that always picks legal ~0.1; the active policy served the logs (~0.23)."""
    active = _version(engine, "active", 1.0, favourite="sales")
    good = _version(engine, "canary", 0.1, favourite="billing", name="good")
    rng = np.random.default_rng(0)
    k = len(ROUTING.action_ids)
    for a in rng.choice(ROUTING.action_ids, size=600):
        _log(engine, active, 1, 0.9 if a == "billing" else 0.1, action=str(a), propensity=1.0 / k)
    report = svc.evaluate_policy(settings, engine, good, loader=_fixed_loader, n_bootstrap=200)
    assert report["n"] == 600 and report["baseline"]["policy_id"] == active
    for name in ("ips", "snips", "dr"):
        assert report["estimates"][name]["value"] == pytest.approx(0.9, abs=0.06)
    assert report["baseline"]["value"] == pytest.approx(0.1 + 0.8 / k, abs=0.05)
    _approve(engine, good)
    out = svc.promote(settings, engine, good, actor="test", loader=_fixed_loader, min_effective_sample_size=50)
    assert out["gate"]["passed"] and not out["forced"]

    bad = _version(engine, "canary", 0.1, favourite="legal", name="bad")
    _approve(engine, bad)
    with pytest.raises(Exception, match="gate failed"):
        svc.promote(settings, engine, bad, actor="test", loader=_fixed_loader)


def test_ope_cli_reports_errors_clearly(run_cli, engine):
    pid = _version(engine, "candidate")
    assert _error(run_cli("ope", "--policy", pid, "--json"))["code"] == "no_logs"
    assert _error(run_cli("ope", "--policy", "nope", "--json"))["code"] == "policy_not_found"


def _fixed_serving(settings, engine, base_favourite: str):
    """Serving whose policies answer with ``FixedBackend(favourites[version id])``. The shipped base routing
    policy is the active one, greedy, favouring ``base_favourite``. Returns (serving, favourites, base id)."""
    from app.services.serving.policy_runtime import PolicyRuntime
    from app.services.serving.stack import Serving, build_safety_layer, prepare_store

    favourites: dict[str, str] = {}
    runtime = PolicyRuntime(settings, backend_factory=lambda v: FixedBackend(favourites[v.id]))
    serving = Serving(runtime, build_safety_layer(settings))
    prepare_store(engine, serving)
    with session_scope(engine) as s:
        base = s.exec(select(PolicyVersion).where(PolicyVersion.state == "active",
                                                  PolicyVersion.decision_type == "ticket-routing")).one()
        base.hyperparams = {"epsilon": 0.0}
        s.add(base)
        favourites[base.id] = base_favourite
        return serving, favourites, base.id


def test_shadow_policy_never_reaches_a_response(app, settings, engine, auth):
    """Active always answers billing, the shadow always legal: responses carry billing only; legal is logged."""
    serving, versions, _ = _fixed_serving(settings, engine, "billing")
    shadow = _version(engine, "candidate", favourite="legal")
    versions[shadow] = "legal"
    with session_scope(engine) as s:
        svc.change_state(s, shadow, "shadow", actor="test")
    app.state.serving = serving
    with TestClient(app) as client:
        bodies = [client.post("/v1/decisions/ticket-routing", json={"context": TICKET, "unit_id": f"u{i}"},
                              headers=auth("app")).json() for i in range(5)]
    assert all(b["action"] == "billing" and b["policy_version_id"] != shadow for b in bodies)
    assert all("legal" not in json.dumps({k: v for k, v in b.items() if k != "safety"}) for b in bodies)
    with Session(engine) as s:
        rows = s.exec(select(Decision)).all()
    assert len(rows) == 5 and all(r.shadow_action == "legal" and r.shadow_policy_version_id == shadow for r in rows)


def test_outcomes_posted_to_the_api_roll_a_worse_canary_back(settings, engine, make_key):
    """No operator runs `check-canary`: the outcome that tips the canary's mean reward below the rule rolls it back."""
    from app.api.main import create_app

    strict = settings.model_copy(update={"canary_min_decisions": 20, "canary_min_outcomes": 20})
    active = _version(engine, "active", 1.0)
    canary = _version(engine, "canary", 0.1)
    _log(engine, active, 60, 0.9)
    _log(engine, canary, 30, None)
    with Session(engine) as s:
        pending = [d.id for d in s.exec(select(Decision).where(Decision.policy_version_id == canary)).all()]
    headers = {"Authorization": f"Bearer {make_key('app')}"}
    with TestClient(create_app(strict)) as client:
        states = []
        for i, decision_id in enumerate(pending):
            r = client.post(f"/v1/decisions/{decision_id}/outcome", json={"reward": 0.2, "feedback": {}}, headers=headers)
            assert r.status_code == 201, r.text
            with Session(engine) as s:
                states.append(s.get(PolicyVersion, canary).state)
    # Still serving until the canary has min_outcomes outcomes, rolled back by the one that reaches it.
    assert states[:19] == ["canary"] * 19 and states[19] == "candidate" and set(states[19:]) == {"candidate"}
    entry = _audit(engine, "policy.rolled_back")[-1]
    assert entry.actor == "system:canary-gate" and entry.subject_id == canary


def test_automatic_canary_rollback_can_be_switched_off(settings):
    from app.services.models.policies import canary_thresholds

    assert canary_thresholds(settings).min_outcomes == settings.canary_min_outcomes
    assert canary_thresholds(settings.model_copy(update={"canary_auto_rollback": False})) is None


def test_blocked_decisions_of_a_canary_roll_it_back(settings, engine, make_key):
    """The canary always picks billing for a 5,000 refund (escalated by the shipped rule set); the active policy
    picks technical. Once the canary has min_decisions, its escalation rate rolls it back with no operator."""
    from app.api.main import create_app

    strict = settings.model_copy(update={"canary_min_decisions": 5})
    serving, favourites, base_id = _fixed_serving(strict, engine, "technical")
    canary = _version(engine, "candidate", favourite="billing")
    favourites[canary] = "billing"
    _approve(engine, canary)
    with session_scope(engine) as s:
        svc.change_state(s, canary, "canary", actor="test", percent=50)
    _log(engine, base_id, 20, None)  # the active policy's record so far: 20 decisions, none blocked
    app = create_app(strict)
    app.state.serving = serving
    refund = {**TICKET, "refund_amount": 5000}
    verdicts = []
    with TestClient(app) as client:
        for i in range(60):
            body = client.post("/v1/decisions/ticket-routing", json={"context": refund, "unit_id": f"u{i}"},
                               headers={"Authorization": f"Bearer {make_key('app')}"}).json()
            verdicts.append((body["policy_version_id"], body["safety"]["verdict"]))
    escalated = [v for v in verdicts if v == (canary, "escalate")]
    assert len(escalated) == 5  # the fifth escalation reached min_decisions and rolled the canary back
    last = max(i for i, v in enumerate(verdicts) if v == (canary, "escalate"))
    after = verdicts[last + 1:]
    assert after and all(p == base_id for p, _ in after), (base_id, canary, verdicts)  # only the active serves after
    with Session(engine) as s:
        assert s.get(PolicyVersion, canary).state == "candidate"
    assert _audit(engine, "policy.rolled_back")[-1].actor == "system:canary-gate"
