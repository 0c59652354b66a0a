"""Policy approvals over HTTP, for admins: approve a policy to leave shadow, and list its approvals."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import AdminKey, SessionDep, SettingsDep
from app.errors import error_responses
from app.services.models import approvals

router = APIRouter(prefix="/v1/policies", tags=["policies"])


class ApprovalIn(BaseModel):
    reason: str | None = Field(None, max_length=4000, description="Why the policy may leave shadow (audited).")


class ApprovalOut(BaseModel):
    """One approval: who (``key:<id>``, ``cli[:<name>]``, or ``system:gates`` when automatic) and why."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    policy_id: str
    actor: str
    reason: str | None
    automatic: bool
    details: dict[str, Any]
    created_at: datetime


class ApprovalsOut(BaseModel):
    policy_id: str
    required: int = Field(description="Distinct approvers needed (ARBITER_POLICY_APPROVALS_REQUIRED).")
    counted: int = Field(description="Distinct approvers that count (the same approver once; never one's own run "
                         "when two are required).")
    approvers: list[str]
    automatic: bool = Field(description="Approved automatically: the decision type opted in and every gate passed.")
    approved: bool = Field(description="Whether the policy may move to canary or active.")
    approvals: list[ApprovalOut]


def _out(session, policy_id: str, status: approvals.ApprovalStatus) -> ApprovalsOut:
    rows = approvals.list_approvals(session, policy_id)
    return ApprovalsOut(**status.as_dict(), approvals=[ApprovalOut.model_validate(r) for r in rows])


@router.post("/{policy_id}/approvals", response_model=ApprovalsOut, status_code=201,
             responses=error_responses(403, 404, 409))
def post_approval(policy_id: str, session: SessionDep, settings: SettingsDep, key: AdminKey,
                  body: ApprovalIn | None = None) -> ApprovalsOut:
    """Approve a policy (candidate, shadow or canary) to leave shadow; 403 for one's own training run when two
    approvers are required."""
    status = approvals.approve(session, policy_id, actor=f"key:{key.id}", reason=body.reason if body else None,
                               rules=approvals.ApprovalRules.from_settings(settings))
    out = _out(session, policy_id, status)
    session.commit()
    return out


@router.get("/{policy_id}/approvals", response_model=ApprovalsOut, responses=error_responses(404))
def get_approvals(policy_id: str, session: SessionDep, settings: SettingsDep, _: AdminKey) -> ApprovalsOut:
    status = approvals.approval_status_of(session, policy_id, approvals.ApprovalRules.from_settings(settings))
    return _out(session, policy_id, status)
