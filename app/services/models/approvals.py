"""Approvals: a policy leaves shadow (to canary, and on to active) only once admins approved it.

- ``approve``: an admin's approval, with who and why, audited (``policy.approved``). With two approvers
  required, the same approver counts once and nobody approves a policy from their own training run
  (``PolicyVersion.created_by``): that is refused with 403.
- ``auto_approve``: a decision type listed in ``ARBITER_POLICY_AUTO_APPROVE`` is approved by ``system:gates``
  when every gate it was given passed; otherwise nothing is recorded.
- ``require_approval``: what ``policies.change_state`` calls before a move to canary or active; 409 with
  "approval required: N of M" when the approvals are not there.

Approvals belong to a policy version, not to one transition: one set covers the canary ramp and the promotion.
A rollback withdraws them: a policy taken out of traffic needs new approvals to go back in.
This module does not move policies (``app.services.models.policies`` does) and holds no opinion about gates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from app.audit import append_audit
from app.errors import Conflict, Forbidden, NotFound
from app.models import AuditEntry, PolicyApproval, PolicyVersion
from app.settings import Settings

__all__ = ["AUTO_APPROVER", "ApprovalRules", "ApprovalStatus", "approval_status", "approval_status_of", "approve", "auto_approve",
           "list_approvals", "require_approval"]

AUTO_APPROVER = "system:gates"
APPROVABLE_STATES = ("candidate", "shadow", "canary")


@dataclass(frozen=True)
class ApprovalRules:
    """How many distinct approvers a policy needs, and which decision types approve themselves on passed gates."""

    required: int = 1
    auto_approve: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_settings(cls, settings: Settings) -> "ApprovalRules":
        return cls(required=settings.policy_approvals_required, auto_approve=settings.policy_auto_approve_types)


@dataclass(frozen=True)
class ApprovalStatus:
    policy_id: str
    required: int
    approvers: tuple[str, ...]  # distinct people whose approvals count
    automatic: bool  # approved by passed gates (the decision type opted in)

    @property
    def approved(self) -> bool:
        return self.automatic or len(self.approvers) >= self.required

    def as_dict(self) -> dict[str, Any]:
        return {"policy_id": self.policy_id, "required": self.required, "approvers": list(self.approvers),
                "counted": len(self.approvers), "automatic": self.automatic, "approved": self.approved}


def _policy(session: Session, policy_id: str) -> PolicyVersion:
    row = session.get(PolicyVersion, policy_id)
    if row is None:
        raise NotFound(f"policy {policy_id} not found", code="policy_not_found")
    return row


def list_approvals(session: Session, policy_id: str) -> list[PolicyApproval]:
    _policy(session, policy_id)
    return list(session.exec(select(PolicyApproval).where(PolicyApproval.policy_id == policy_id)
                             .order_by(col(PolicyApproval.created_at), col(PolicyApproval.id))).all())


def _last_rollback(session: Session, policy_id: str):
    return session.exec(select(AuditEntry.ts).where(AuditEntry.subject_type == "policy", AuditEntry.subject_id == policy_id,
                                                    AuditEntry.action == "policy.rolled_back")
                        .order_by(col(AuditEntry.seq).desc())).first()


def approval_status(session: Session, policy: PolicyVersion, rules: ApprovalRules) -> ApprovalStatus:
    rows = list_approvals(session, policy.id)
    withdrawn_at = _last_rollback(session, policy.id)
    if withdrawn_at is not None:
        rows = [r for r in rows if r.created_at > withdrawn_at]
    approvers: list[str] = []
    for row in rows:
        # The same approver counts once; with two required, an approval of one's own run never counts.
        if row.automatic or row.actor in approvers or (rules.required > 1 and row.actor == policy.created_by):
            continue
        approvers.append(row.actor)
    automatic = policy.decision_type in rules.auto_approve and any(r.automatic for r in rows)
    return ApprovalStatus(policy.id, rules.required, tuple(approvers), automatic)


def approval_status_of(session: Session, policy_id: str, rules: ApprovalRules) -> ApprovalStatus:
    return approval_status(session, _policy(session, policy_id), rules)


def approve(session: Session, policy_id: str, *, actor: str, reason: str | None, rules: ApprovalRules) -> ApprovalStatus:
    """Record ``actor``'s approval of a policy (candidate, shadow or canary) and audit it; returns the new status."""
    policy = _policy(session, policy_id)
    if policy.state not in APPROVABLE_STATES:
        raise Conflict(f"policy {policy_id} is {policy.state}; only a candidate, shadow or canary is approved",
                       code="not_approvable")
    if rules.required > 1 and policy.created_by and actor == policy.created_by:
        raise Forbidden(f"{actor} registered policy {policy_id} (its training run) and may not approve it while "
                        f"{rules.required} approvers are required", code="own_training_run")
    session.add(PolicyApproval(policy_id=policy_id, actor=actor, reason=reason))
    session.flush()
    status = approval_status(session, policy, rules)
    append_audit(session, actor, "policy.approved", "policy", policy_id,
                 {"reason": reason, "decision_type": policy.decision_type, "state": policy.state, **status.as_dict()})
    return status


def auto_approve(session: Session, policy_id: str, *, gates: Mapping[str, bool], rules: ApprovalRules,
                 details: dict[str, Any] | None = None) -> ApprovalStatus | None:
    """Approve as ``system:gates`` when the decision type opted in and every gate in ``gates`` passed.

    Returns None (nothing recorded) when it did not opt in, no gate was given, or one failed."""
    policy = _policy(session, policy_id)
    if policy.decision_type not in rules.auto_approve or not gates or not all(gates.values()):
        return None
    if policy.state not in APPROVABLE_STATES:
        return None
    session.add(PolicyApproval(policy_id=policy_id, actor=AUTO_APPROVER, reason="every gate passed", automatic=True,
                               details={"gates": dict(gates), **(details or {})}))
    session.flush()
    status = approval_status(session, policy, rules)
    append_audit(session, AUTO_APPROVER, "policy.approved", "policy", policy_id,
                 {"reason": "every gate passed", "gates": dict(gates), "decision_type": policy.decision_type,
                  "state": policy.state, **status.as_dict()})
    return status


def require_approval(session: Session, policy: PolicyVersion, rules: ApprovalRules) -> ApprovalStatus:
    """Raise 409 ``approval_required`` unless ``policy`` has the approvals ``rules`` ask for."""
    status = approval_status(session, policy, rules)
    if not status.approved:
        raise Conflict(f"approval required: {len(status.approvers)} of {status.required} "
                       f"(arbiter policy approve {policy.id} --reason ...)", code="approval_required",
                       details=status.as_dict())
    return status
