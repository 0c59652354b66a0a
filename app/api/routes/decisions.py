"""`POST /v1/decisions/{decision_type}` and `POST /v1/decisions/{id}/outcome`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Optional

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel, Field

from app.api.deps import EngineDep, ServingDep, SessionDep, SettingsDep, require_roles
from app.errors import InvalidInput, NotFound, error_responses
from app.models import ApiKey, Decision
from app.services.models.policies import canary_thresholds
from app.services.serving.decisions import decide, record_outcome

router = APIRouter(prefix="/v1/decisions", tags=["decisions"])
AppKey = Annotated[ApiKey, Depends(require_roles("admin", "app"))]


class DecisionRequest(BaseModel):
    context: dict[str, Any] = Field(description="Input of the decision; validated against the decision type's JSON schema.")
    unit_id: Optional[str] = Field(None, max_length=200, description="Who/what the decision is about; keeps a unit on the same policy during a canary.")


class SafetyOut(BaseModel):
    verdict: str
    rule_set_hash: Optional[str] = None
    input: Optional[dict[str, Any]] = None
    output: Optional[dict[str, Any]] = None


class DecisionOut(BaseModel):
    id: str
    decision_type: str
    unit_id: Optional[str]
    action: Optional[str] = Field(description="The action to take (finite decision types); null when not served.")
    output: Optional[str] = Field(description="The text to show (free-text decision types), after redaction; null when not served.")
    propensity: Optional[float] = Field(description="Exact probability with which the policy drew its proposed action.")
    served: bool
    policy_version_id: Optional[str]
    safety: SafetyOut
    review_item_id: Optional[str]
    latency_ms: float
    replayed: bool
    created_at: Optional[str]


class OutcomeIn(BaseModel):
    """What happened after a decision. One outcome per decision: the first stands (a second one is 409) unless
    the second says `correction: true` with a `reason`, which replaces the first and is audited."""

    reward: Optional[float] = Field(None, ge=-1e6, le=1e6)
    feedback: dict[str, Any] = Field(default_factory=dict)
    correction: bool = Field(False, description="Replace the outcome already recorded (audited; needs a reason).")
    reason: Optional[str] = Field(None, max_length=1000, description="Why the recorded outcome was wrong (correction only).")


class OutcomeOut(BaseModel):
    id: str
    decision_id: str
    reward: Optional[float]
    feedback: dict[str, Any]
    corrected_at: Optional[datetime] = Field(None, description="When the outcome was last corrected; null if never.")


@router.post("/{decision_type}", response_model=DecisionOut, responses=error_responses(409, 503))
async def post_decision(decision_type: str, body: DecisionRequest, response: Response, engine: EngineDep, serving: ServingDep,
                        settings: SettingsDep, key: AppKey,
                        idempotency_key: Annotated[Optional[str], Header(max_length=200)] = None) -> dict:
    result = await decide(engine, serving.runtime, serving.safety, decision_type, body.context, unit_id=body.unit_id,
                          idempotency_key=idempotency_key, actor=f"key:{key.id}", canary=canary_thresholds(settings))
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return result.public()


@router.get("/{decision_id}", response_model=DecisionOut)
def get_decision(decision_id: str, session: SessionDep, _: Annotated[ApiKey, Depends(require_roles("admin", "app", "reviewer"))]) -> dict:
    from sqlmodel import select

    from app.models import ReviewItem
    from app.services.serving.decisions import DecisionResult

    decision = session.get(Decision, decision_id)
    if decision is None:
        raise NotFound(f"no decision {decision_id!r}")
    item = session.exec(select(ReviewItem.id).where(ReviewItem.decision_id == decision_id)).first()
    return DecisionResult(decision, item).public()


@router.post("/{decision_id}/outcome", response_model=OutcomeOut, status_code=201,
             responses={200: {"model": OutcomeOut, "description": "A correction replaced the recorded outcome."},
                        **error_responses(409)})
def post_outcome(decision_id: str, body: OutcomeIn, response: Response, session: SessionDep, settings: SettingsDep,
                 key: AppKey) -> OutcomeOut:
    if body.reason is not None and not body.correction:
        raise InvalidInput("a reason goes with a correction only")
    outcome = record_outcome(session, decision_id, body.reward, body.feedback, actor=f"key:{key.id}",
                             canary=canary_thresholds(settings), correction=body.correction, reason=body.reason)
    session.commit()
    if body.correction:
        response.status_code = 200
    return OutcomeOut(id=outcome.id, decision_id=outcome.decision_id, reward=outcome.reward, feedback=outcome.feedback,
                      corrected_at=outcome.corrected_at)
