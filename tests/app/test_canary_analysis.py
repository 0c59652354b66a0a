"""The sequential canary check through the CLI and the store: the verdict and its statistics in the JSON and in
the rollback's audit entry; the fixed rule only when asked for."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sqlmodel import Session, select

from app.db import session_scope
from app.models import AuditEntry, Decision, Outcome, PolicyVersion

TICKET = {"subject": "Charged twice", "body": "My card was charged twice.", "customer": {"tier": "standard"}}


def _version(engine, state: str, share: float) -> str:
    with session_scope(engine) as s:
        row = PolicyVersion(name=state, decision_type="ticket-routing", base_model="fixed", state=state,
                            traffic_share=share, hyperparams={"favourite": "billing", "epsilon": 0.0})
        s.add(row)
        s.flush()
        return row.id


def _log(engine, version_id: str, rewards) -> None:
    with session_scope(engine) as s:
        for reward in rewards:
            d = Decision(decision_type="ticket-routing", policy_version_id=version_id, context=TICKET, action="billing",
                         proposed_action="billing", propensity=0.5, safety_verdict="allow", action_probs={"billing": 0.5})
            s.add(d)
            s.flush()
            s.add(Outcome(decision_id=d.id, reward=float(reward)))


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


@pytest.mark.both_databases
def test_check_canary_reports_the_sequential_verdict_and_audits_its_statistics(run_cli, engine):
    rng = np.random.default_rng(0)
    active, canary = _version(engine, "active", 1.0), _version(engine, "canary", 0.2)
    _log(engine, active, rng.beta(16, 4, 400))  # mean 0.8
    _log(engine, canary, rng.beta(16, 4, 30))
    early = _json(run_cli("policy", "check-canary", "ticket-routing", "--min-decisions", 20, "--min-outcomes", 20,
                          "--json"))
    assert early["method"] == "sequential" and early["decision"] in ("continue", "promote") and not early["rolled_back"]
    reward = next(t for t in early["statistics"] if t["metric"] == "reward")
    assert reward["n_canary"] == 30 and reward["ci_low"] < reward["effect"] < reward["ci_high"]
    assert 0 <= reward["p_value"] <= 1

    _log(engine, canary, rng.beta(8, 12, 100))  # the canary's later decisions earn 0.4
    from prometheus_client import REGISTRY

    labels = {"decision_type": "ticket-routing", "method": "sequential"}
    before = REGISTRY.get_sample_value("arbiter_canary_rollbacks_total", labels) or 0.0
    out = _json(run_cli("policy", "check-canary", "ticket-routing", "--min-decisions", 20, "--min-outcomes", 20,
                        "--json"))
    assert out["rolled_back"] and out["decision"] == "rollback" and "mean reward" in out["reasons"][0]
    assert REGISTRY.get_sample_value("arbiter_canary_rollbacks_total", labels) == before + 1
    with Session(engine) as s:
        assert s.get(PolicyVersion, canary).state == "candidate"
        entry = s.exec(select(AuditEntry).where(AuditEntry.action == "policy.rolled_back")).one()
    stats = {t["metric"]: t for t in entry.details["statistics"]}
    assert entry.details["method"] == "sequential" and stats["reward"]["status"] == "worse"
    assert stats["reward"]["ci_high"] < 0 and stats["reward"]["n_canary"] == 130 and stats["reward"]["p_value"] < 0.025


def test_fixed_rule_only_when_asked(run_cli, engine):
    """A canary 0.06 below the active policy on 0/1 rewards after 100 outcomes: the fixed rule (drop > 0.05) rolls
    it back; the sequential test sees no evidence yet and continues."""
    active, canary = _version(engine, "active", 1.0), _version(engine, "canary", 0.2)
    _log(engine, active, [1] * 80 + [0] * 20)
    _log(engine, canary, [1] * 74 + [0] * 26)
    args = ("policy", "check-canary", "ticket-routing", "--min-decisions", 20, "--min-outcomes", 20, "--json")
    seq = _json(run_cli(*args))
    assert seq["decision"] == "continue" and not seq["rolled_back"]
    fixed = _json(run_cli(*args, "--method", "fixed"))
    assert fixed["method"] == "fixed" and fixed["rolled_back"] and fixed["statistics"] == []


def test_promotion_can_require_evidence_of_not_worse(settings, engine):
    """With ARBITER_CANARY_REQUIRE_EVIDENCE, 30 canary outcomes are no evidence (refused unless forced); 1,500 at
    the active policy's level put the whole interval within the margins, and the promotion records the verdict."""
    from app.errors import Conflict
    from app.services.models.policies import promote
    from tests.app.test_policy import _approve, _fixed_loader

    strict = settings.model_copy(update={"canary_require_evidence": True})
    rng = np.random.default_rng(1)
    active, canary = _version(engine, "active", 1.0), _version(engine, "canary", 0.2)
    _approve(engine, canary)
    _log(engine, active, rng.beta(16, 4, 400))
    _log(engine, canary, rng.beta(16, 4, 30))
    with pytest.raises(Conflict, match="no evidence yet") as refused:
        promote(strict, engine, canary, actor="test", loader=_fixed_loader, min_effective_sample_size=10,
                max_regression=0.1)
    assert refused.value.details["canary"]["decision"] == "continue"
    _log(engine, canary, rng.beta(16, 4, 1500))
    out = promote(strict, engine, canary, actor="test", loader=_fixed_loader, min_effective_sample_size=10,
                max_regression=0.1)
    assert out["gate"]["canary"]["decision"] == "promote" and not out["forced"]
    assert {t["metric"]: t["status"] for t in out["gate"]["canary"]["statistics"]} == {"reward": "not_worse",
                                                                                      "block_rate": "not_worse"}
