"""The review queue over HTTP, for reviewers (and admins): list, show, decide, retrain; admins reopen."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import SessionDep, SettingsDep, require_roles
from app.errors import error_responses
from app.input_values import INT64_MAX
from app.models import ApiKey
from app.services.review import queue as review

router = APIRouter(prefix="/v1/review", tags=["review"])
ReviewerKey = Annotated[ApiKey, Depends(require_roles("reviewer", "admin"))]
AdminKey = Annotated[ApiKey, Depends(require_roles("admin"))]


def _meanings(table: dict[str, str]) -> str:
    return "; ".join(f"{name}: {meaning}" for name, meaning in table.items())


class ReviewItemOut(BaseModel):
    """A review item as the API shows it."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    decision_id: str | None
    decision_type: str | None
    kind: str
    content: str
    context: dict[str, Any]
    reasons: list[dict[str, Any]]
    status: str = Field(description="pending | approved (the output may be served) | rejected (it must not be) | "
                        "edited (serve the reviewer's correction)")
    safety_layer: str | None = Field(description="right | wrong: whether the safety layer was right to flag it; "
                                     "null while pending (or for a legacy verdict that did not say)")
    category: str | None
    note: str | None
    edited_content: str | None
    reviewer: str | None
    created_at: datetime
    decided_at: datetime | None
    reopened_at: datetime | None = None


class VerdictIn(BaseModel):
    """A verdict says two things: whether the output may be served (`verdict`) and whether the safety layer
    was right to flag it (`safety_layer`). Contradictions (e.g. the layer right but the content "safe", or
    serving what the category calls harmful) are refused with 422."""

    verdict: Literal["serve", "withhold", "edit", "approve", "reject"] = Field(
        description=f"{_meanings(review.VERDICT_HELP)}. Old names: approve = serve, reject = withhold."
    )
    safety_layer: Literal["right", "wrong"] | None = Field(
        None, description=f"{_meanings(review.SAFETY_LAYER)}. Default: wrong for serve, right otherwise."
    )
    category: str | None = Field(
        None,
        description=f"What the flagged content is; one of: {', '.join(review.CATEGORIES)}. "
        "Default for serve: safe; required otherwise.",
    )
    note: str | None = Field(None, max_length=4000)
    edited_content: str | None = Field(
        None, max_length=20_000, description="The corrected output (edit only)."
    )


class ReopenIn(BaseModel):
    reason: str = Field(min_length=1, max_length=4000, description="Why the verdict was a mistake (audited).")


class VerdictOut(BaseModel):
    item: ReviewItemOut
    comparison_ids: list[str] = Field(description="Preference pairs this verdict labeled.")
    moderation_examples: int = Field(description="Examples for the local harm classifier it produced.")


class RetrainOut(BaseModel):
    version: int
    path: str
    labels: list[str]
    n_examples: int
    n_reviewer_examples: int
    training_sha256: str


@router.get("/items", response_model=list[ReviewItemOut])
def get_items(
    session: SessionDep,
    _: ReviewerKey,
    status: Literal["pending", "approved", "rejected", "edited", "all"] = "pending",
    kind: Literal["flagged", "escalated"] | None = None,
    decision_type: str | None = None,
    category: str | None = None,
    created_after: datetime | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=INT64_MAX),
) -> list:
    return review.list_items(
        session,
        status=None if status == "all" else status,
        kind=kind,
        decision_type=decision_type,
        category=category,
        created_after=created_after,
        limit=limit,
        offset=offset,
    )


@router.get("/items/{item_id}", response_model=ReviewItemOut)
def get_item(item_id: str, session: SessionDep, _: ReviewerKey):
    return review.get_item(session, item_id)


@router.post("/items/{item_id}/verdict", response_model=VerdictOut, responses=error_responses(409))
def post_verdict(item_id: str, body: VerdictIn, session: SessionDep, settings: SettingsDep, key: ReviewerKey):
    result = review.decide(
        session,
        item_id,
        body.verdict,
        reviewer=f"key:{key.id}",
        category=body.category,
        note=body.note,
        edited_content=body.edited_content,
        safety_layer=body.safety_layer,
        decision_types=review.decision_types_for(settings),
    )
    session.commit()
    return VerdictOut(
        item=ReviewItemOut.model_validate(result.item),
        comparison_ids=result.comparison_ids,
        moderation_examples=len(result.moderation_examples),
    )


@router.post("/items/{item_id}/reopen", response_model=ReviewItemOut, responses=error_responses(409))
def post_reopen(item_id: str, body: ReopenIn, session: SessionDep, key: AdminKey):
    """Admins only: undo a mistaken verdict. The item is pending again, the training data the verdict made is
    withdrawn, and the audit log keeps the old verdict and the reason."""
    item = review.reopen(session, item_id, actor=f"key:{key.id}", reason=body.reason)
    session.commit()
    return item


@router.post("/harm-classifier/retrain", response_model=RetrainOut, responses=error_responses(422))
def post_retrain(session: SessionDep, settings: SettingsDep, key: ReviewerKey) -> RetrainOut:
    artifact = review.retrain_harm_classifier(
        session, review.harm_classifier_dir(settings), actor=f"key:{key.id}"
    )
    session.commit()
    return RetrainOut(
        version=artifact.version,
        path=artifact.path,
        labels=list(artifact.labels),
        n_examples=artifact.n_examples,
        n_reviewer_examples=artifact.n_new_examples,
        training_sha256=artifact.training_sha256,
    )
