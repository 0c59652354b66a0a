"""Policies in the store: the registry, rollout state changes, the canary check, off-policy evaluation.

The rules live in the ``policies`` package (``policies.rollout`` plans transitions and judges canaries,
``policies.ope`` estimates, ``policies.dpo`` / ``policies.online_rl`` train); this module reads and writes the
store around them, and writes one audit entry per state change in the same transaction:

- ``change_state`` / ``rollback`` / ``promote``: validated transitions (``plan_transition`` / ``plan_rollback``);
  a move to canary or active needs the policy's approvals (``app.services.models.approvals``; a rollback never
  does); promotion of a finite-action policy must pass the OPE gate unless forced (the override is audited;
  forcing the gate does not stand in for an approval);
- ``check_canary``: canary vs active over the decisions served so far (``policies.canary``: an always-valid
  sequential test by default, the fixed-delta rule as an option); rolls back on evidence of worse;
- ``evaluate_policy``: OPE of a policy over logged decisions with rewards (any logging policy).

Training jobs are in ``app.services.models.policy_training``. Model scoring holds no database transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from app.audit import append_audit
from app.db import session_scope
from app.errors import Conflict, InvalidInput
from app.metrics import CANARY_ROLLBACKS
from app.models import AuditEntry, Decision, Outcome, PolicyVersion, utcnow
from app.services.models.approvals import ApprovalRules, approval_status, auto_approve, require_approval
from app.services.models.rows import get_row, newest_first
from app.services.serving.policy_runtime import PolicyRuntime
from app.settings import Settings
from policies.action_policy import ActionPolicy
from policies.canary import analyse_canary
from policies.ope import LoggedDecisions, context_features, evaluate
from policies.rollout import (
    ArmStats,
    CanaryThresholds,
    PolicyState,
    RolloutError,
    ope_gate,
    plan_rollback,
    plan_transition,
)

__all__ = ["canary_analysis", "canary_thresholds", "change_state", "configured_canary_thresholds", "check_canary", "evaluate_policy", "get_policy", "list_policies", "logged_decisions",
           "promote", "rollback"]

PolicyLoader = Callable[[PolicyVersion], ActionPolicy]


def get_policy(session: Session, policy_id: str) -> PolicyVersion:
    return get_row(session, PolicyVersion, policy_id, "policy", "policy_not_found")


def list_policies(session: Session, decision_type: str | None = None) -> list[PolicyVersion]:
    return newest_first(session, PolicyVersion, decision_type=decision_type)


# ------------------------------------------------------------------------------------------ state changes
def _apply(session: Session, changes, actor: str, action: str, canary_share: float | None, extra: dict) -> list[PolicyVersion]:
    rows = []
    for change in changes:
        row = get_policy(session, change.policy_id)
        row.state = change.to_state.value
        row.traffic_share = {PolicyState.ACTIVE: 1.0, PolicyState.CANARY: canary_share or 0.0}.get(change.to_state, 0.0)
        row.updated_at = utcnow()
        session.add(row)
        details = {"from": change.from_state.value, "to": change.to_state.value, "reason": change.reason,
                   "traffic_share": row.traffic_share, "decision_type": row.decision_type, **extra}
        if change.reason.startswith("superseded by "):
            details["superseded_by"] = change.reason.removeprefix("superseded by ")
        append_audit(session, actor, action, "policy", row.id, details)
        rows.append(row)
    return rows


def _states(session: Session, decision_type: str) -> dict[str, str]:
    return {p.id: p.state for p in list_policies(session, decision_type)}


def change_state(session: Session, policy_id: str, target: str, *, actor: str, percent: float | None = None,
                 extra: dict | None = None, approvals: ApprovalRules | None = None) -> list[PolicyVersion]:
    """Move a policy to ``target`` (shadow, canary with ``percent``, active, retired) and audit every change.

    Entering canary or active needs the approvals ``approvals`` asks for (default: one approver)."""
    row = get_policy(session, policy_id)
    target_state = PolicyState(target)
    share = None
    if target_state == PolicyState.CANARY:
        if percent is None or not 0 < percent <= 100:
            raise InvalidInput("a canary needs --percent in (0, 100]", code="bad_percent")
        share = percent / 100.0
        if row.state == PolicyState.CANARY:  # same canary, new share: only more (or fewer) units, same salt
            old = row.traffic_share
            row.traffic_share, row.updated_at = share, utcnow()
            session.add(row)
            append_audit(session, actor, "policy.traffic_changed", "policy", row.id,
                         {"from": old, "to": share, "decision_type": row.decision_type})
            return [row]
    try:
        changes = plan_transition(_states(session, row.decision_type), policy_id, target_state)
    except RolloutError as exc:
        raise Conflict(str(exc), code="invalid_transition") from None
    if target_state in (PolicyState.CANARY, PolicyState.ACTIVE):  # leaving shadow (a wider canary returned above)
        status = require_approval(session, row, approvals or ApprovalRules())
        extra = {**(extra or {}), "approvers": list(status.approvers), "auto_approved": status.automatic}
    return _apply(session, changes, actor, "policy.state_changed", share, extra or {})


def _previous_active(session: Session, policy_id: str) -> str | None:
    """The policy that ``policy_id`` superseded when it was promoted (from the audit log)."""
    entries = session.exec(select(AuditEntry).where(AuditEntry.subject_type == "policy",
                                                    AuditEntry.action == "policy.state_changed")
                           .order_by(col(AuditEntry.seq).desc())).all()
    for entry in entries:
        if (entry.details or {}).get("superseded_by") == policy_id:
            return entry.subject_id
    return None


def rollback(session: Session, policy_id: str, *, actor: str, reason: str = "manual",
             extra: dict | None = None) -> list[PolicyVersion]:
    row = get_policy(session, policy_id)
    previous = _previous_active(session, policy_id) if row.state == PolicyState.ACTIVE else None
    try:
        changes = plan_rollback(_states(session, row.decision_type), policy_id, previous_active=previous)
    except RolloutError as exc:
        raise Conflict(str(exc), code="invalid_transition") from None
    return _apply(session, changes, actor, "policy.rolled_back", None, {"rollback_reason": reason, **(extra or {})})


# ------------------------------------------------------------------------------------------------- OPE
def logged_decisions(session: Session, decision_type: str, limit: int | None) -> list[tuple[Decision, float]]:
    rewards = (select(Outcome.decision_id, func.avg(Outcome.reward).label("reward"))
               .where(col(Outcome.reward).is_not(None)).group_by(Outcome.decision_id).subquery())
    query = (select(Decision, rewards.c.reward).join(rewards, rewards.c.decision_id == Decision.id)
             .where(Decision.decision_type == decision_type, col(Decision.propensity).is_not(None),
                    col(Decision.action).is_not(None))
             .order_by(col(Decision.created_at).desc()))
    if limit:
        query = query.limit(limit)
    return [(d, float(r)) for d, r in session.exec(query).all()]


def _mask(decision: Decision) -> tuple[str, ...]:
    return tuple(((decision.safety_details or {}).get("input") or {}).get("masked_actions") or ())


def evaluate_policy(settings: Settings, engine: Engine, policy_id: str, *, loader: PolicyLoader | None = None,
                    limit: int | None = None, n_bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    """IPS / SNIPS / DR estimates of a finite-action policy's mean reward over logged decisions with rewards."""
    with Session(engine, expire_on_commit=False) as session:
        version = get_policy(session, policy_id)
        rows = logged_decisions(session, version.decision_type, limit)
        active = session.exec(select(PolicyVersion).where(PolicyVersion.decision_type == version.decision_type,
                                                          PolicyVersion.state == "active")).first()
    if not rows:
        raise InvalidInput(f"no logged {version.decision_type} decisions with rewards to evaluate on", code="no_logs")
    policy = (loader or _runtime_loader(settings))(version)
    contexts = [d.context for d, _ in rows]
    probs = _target_probabilities(policy, contexts, [_mask(d) for d, _ in rows])
    logs = LoggedDecisions.from_records(policy.actions, [d.action for d, _ in rows], [d.propensity for d, _ in rows],
                                        [r for _, r in rows], probs, features=context_features(contexts))
    report = evaluate(logs, n_bootstrap=n_bootstrap, seed=seed)
    served_by_active = [r for d, r in rows if active is not None and d.policy_version_id == active.id]
    baseline = float(np.mean(served_by_active)) if served_by_active else report.logged_mean_reward
    return {"policy_id": policy_id, "decision_type": version.decision_type, **report.as_dict(),
            "baseline": {"policy_id": active.id if active else None, "value": baseline,
                         "source": "active policy's own decisions" if served_by_active else "all logged decisions"}}


def _target_probabilities(policy: ActionPolicy, contexts, masks) -> list[dict[str, float]]:
    from policies.evaluation import policy_probabilities

    return policy_probabilities(policy, contexts, masks)


def _runtime_loader(settings: Settings) -> PolicyLoader:
    runtime = PolicyRuntime(settings)

    def load(version: PolicyVersion) -> ActionPolicy:
        policy = runtime.get(version).policy
        if not isinstance(policy, ActionPolicy):
            raise InvalidInput(f"{version.decision_type} is a free-text decision type: OPE needs a finite action set",
                               code="not_an_action_policy")
        return policy

    return load


def promote(settings: Settings, engine: Engine, policy_id: str, *, actor: str, force: bool = False,
            loader: PolicyLoader | None = None, min_effective_sample_size: float = 100.0,
            max_regression: float = 0.0, estimator: str = "dr") -> dict[str, Any]:
    """Canary -> active, after the OPE gate (finite-action policies with logged rewards) unless ``force``.

    The policy needs its approvals; a decision type that opted into automatic approval gets one here when every
    gate passed (never when forced)."""
    rules = ApprovalRules.from_settings(settings)
    with Session(engine) as session:
        version = get_policy(session, policy_id)
        if version.state != PolicyState.CANARY:
            raise Conflict(f"policy {policy_id} is {version.state}; only a canary can be promoted", code="invalid_transition")
        if version.decision_type not in rules.auto_approve:
            require_approval(session, version, rules)  # refuse before the costly gate
    runtime = PolicyRuntime(settings)
    kind = runtime.decision_type(version.decision_type).kind
    gate: dict[str, Any] = {"checked": False, "reason": "free-text decision type: no OPE gate"}
    if kind == "action":
        try:
            ope = evaluate_policy(settings, engine, policy_id, loader=loader)
        except InvalidInput as exc:
            if exc.code != "no_logs":
                raise
            ope = None
        if ope is None:
            gate = {"checked": False, "passed": False, "reasons": ["no logged decisions with rewards"]}
        else:
            est = ope["estimates"][estimator]
            result = ope_gate(est["ci_low"], ope["baseline"]["value"], effective_sample_size=ope["effective_sample_size"],
                              min_effective_sample_size=min_effective_sample_size, max_regression=max_regression)
            gate = {"checked": True, "passed": result.passed, "reasons": list(result.reasons), "estimator": estimator,
                    "estimate": est, "baseline": ope["baseline"], "effective_sample_size": ope["effective_sample_size"]}
        if not gate["passed"] and not force:
            raise Conflict("promotion gate failed: " + "; ".join(gate["reasons"]), code="gate_failed", details=gate)
    gate["canary"] = _canary_evidence(engine, version, configured_canary_thresholds(settings))
    if (settings.canary_require_evidence and settings.canary_method == "sequential"
            and gate["canary"]["decision"] != "promote" and not force):
        raise Conflict("promotion gate failed: no evidence yet that the canary is not worse than the active policy "
                       f"(canary check: {gate['canary']['decision']})", code="gate_failed", details=gate)
    with session_scope(engine) as session:
        if not force and not approval_status(session, version, rules).approved:
            auto_approve(session, policy_id, rules=rules, details={"gate": gate},
                         gates={"ope": bool(gate.get("checked") and gate.get("passed")),
                                "canary": gate["canary"].get("decision") != "rollback"})
        rows = change_state(session, policy_id, "active", actor=actor, extra={"gate": gate, "forced": force},
                            approvals=rules)
        return {"changed": [{"id": r.id, "state": r.state} for r in rows], "gate": gate, "forced": force}


# --------------------------------------------------------------------------------------- canary check
def _canary_evidence(engine: Engine, version: PolicyVersion, thresholds: CanaryThresholds) -> dict[str, Any]:
    """The canary-vs-active verdict behind a promotion (read only: promotion never rolls back)."""
    with Session(engine) as session:
        return canary_analysis(session, version, thresholds)


def canary_analysis(session: Session, version: PolicyVersion, thresholds: CanaryThresholds) -> dict[str, Any]:
    """``version`` against the active policy of its decision type, read only: decision, method, statistics."""
    active = session.exec(select(PolicyVersion).where(PolicyVersion.decision_type == version.decision_type,
                                                      PolicyVersion.state == "active")).first()
    if active is None:
        return {"decision": None, "reason": "no active policy to compare with"}
    verdict = analyse_canary(_arm(session, active.id), _arm(session, version.id), thresholds)
    return {"decision": verdict.decision, "method": thresholds.method, "active": active.id,
            "reasons": list(verdict.reasons), "statistics": [_finite(t.as_dict()) for t in verdict.tests]}


def _arm(session: Session, version_id: str) -> ArmStats:
    decisions = session.exec(select(func.count()).select_from(Decision)
                             .where(Decision.policy_version_id == version_id)).one()
    blocks = session.exec(select(func.count()).select_from(Decision).where(
        Decision.policy_version_id == version_id, col(Decision.safety_verdict).in_(("block", "escalate")))).one()
    outcomes = session.exec(select(func.count(), func.coalesce(func.sum(Outcome.reward), 0.0),
                                   func.coalesce(func.sum(Outcome.reward * Outcome.reward), 0.0)).select_from(Outcome)
                            .join(Decision, Decision.id == Outcome.decision_id)
                            .where(Decision.policy_version_id == version_id, col(Outcome.reward).is_not(None))).one()
    return ArmStats(int(decisions), int(blocks), int(outcomes[0]), float(outcomes[1]), float(outcomes[2]))


def canary_thresholds(settings: Settings) -> CanaryThresholds | None:
    """The automatic rollback rule configured in ``settings``; None when automatic rollback is off."""
    if not settings.canary_auto_rollback:
        return None
    return configured_canary_thresholds(settings)


def configured_canary_thresholds(settings: Settings) -> CanaryThresholds:
    """The ``ARBITER_CANARY_*`` thresholds, whether or not the automatic rollback is on: the one source of truth
    for the automatic check and ``arbiter policy check-canary``."""
    return CanaryThresholds(min_decisions=settings.canary_min_decisions, min_outcomes=settings.canary_min_outcomes,
                            max_block_rate_increase=settings.canary_max_block_rate_delta,
                            max_reward_drop=settings.canary_max_reward_drop, method=settings.canary_method,
                            alpha=settings.canary_alpha)


def check_canary(session: Session, decision_type: str, *, thresholds: CanaryThresholds | None = None,
                 actor: str = "system:canary-gate") -> dict[str, Any]:
    """Compare the canary with the active policy; roll the canary back (audited) when the verdict says so.

    ``decision`` is "rollback", "promote" (sequential: evidence of not worse at both margins) or "continue";
    ``statistics`` holds each metric's effect, always-valid interval and p-value, and n; the rollback's audit
    entry carries the same."""
    states = list_policies(session, decision_type)
    canary = next((p for p in states if p.state == "canary"), None)
    active = next((p for p in states if p.state == "active"), None)
    if canary is None or active is None:
        return {"decision_type": decision_type, "canary": None, "rolled_back": False, "decision": None,
                "reasons": ["no canary running"]}
    thresholds = thresholds or CanaryThresholds()
    verdict = analyse_canary(_arm(session, active.id), _arm(session, canary.id), thresholds)
    statistics = [_finite(t.as_dict()) for t in verdict.tests]
    if verdict.rollback:
        rollback(session, canary.id, actor=actor, reason="; ".join(verdict.reasons),
                 extra={"method": thresholds.method, "statistics": statistics})
        CANARY_ROLLBACKS.labels(decision_type, thresholds.method).inc()
    return {"decision_type": decision_type, "canary": canary.id, "active": active.id, "rolled_back": verdict.rollback,
            "decision": verdict.decision, "method": thresholds.method, "reasons": list(verdict.reasons),
            "enough_data": verdict.enough_data, "details": _finite(verdict.details), "statistics": statistics}


def _finite(values: dict) -> dict:
    """NaN / infinite numbers as None: JSON output and audit entries stay valid JSON."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()}

