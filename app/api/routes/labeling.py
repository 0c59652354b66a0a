"""Labeling endpoints: Argilla's webhook (near-real-time human labels) and the agreement report.

The webhook carries no Arbiter API key (Argilla cannot send one): the Standard Webhooks signature
is its authentication, checked before anything is read or written.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from app.api.deps import SessionDep, SettingsDep, require_roles
from app.errors import error_responses
from app.models import ApiKey
from app.services.argilla_webhook import ingest_webhook
from app.services.labels.agreement import compute_agreement

router = APIRouter(prefix="/v1/labeling", tags=["labeling"])


@router.post("/argilla/webhook", responses=error_responses(401, 404, 413, 422, 502, 503))
async def argilla_webhook(request: Request, session: SessionDep, settings: SettingsDep) -> dict[str, Any]:
    """Apply a signed `response.created` / `response.updated` delivery from Argilla."""
    body = await request.body()  # the raw bytes: the signature covers them exactly
    return ingest_webhook(session, settings, body, dict(request.headers))


@router.get("/agreement")
def get_agreement(session: SessionDep,
                  _: Annotated[ApiKey, Depends(require_roles("admin", "annotator", "reviewer"))],
                  include_imported: bool = False) -> dict[str, Any]:
    """Judges vs the human majority, Krippendorff's alpha between annotators, per-annotator counts."""
    return compute_agreement(session, include_imported=include_imported).to_dict()
