"""Preference pairs in and out over HTTP (the same formats as `arbiter data import/export`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from app.api.deps import SessionDep, require_roles
from app.errors import InvalidInput
from app.models import ApiKey
from app.services.labels.data_io import export_pairs, import_pairs
from reward_models.pairs import PairParseError, pair_from_record, pair_to_record

router = APIRouter(prefix="/v1/pairs", tags=["data"])


class PairsIn(BaseModel):
    source: str = Field(min_length=1, max_length=200, pattern=r"^[\w.:-]+$", description="Name of the dataset the pairs come from.")
    pairs: list[dict[str, Any]] = Field(min_length=1, max_length=10_000, description="Records in any of the three pair formats.")


class ImportOut(BaseModel):
    read: int
    added: int
    existing: int
    invalid: list[dict]
    formats: dict[str, int]


@router.post("", response_model=ImportOut)
def post_pairs(body: PairsIn, session: SessionDep,
               key: Annotated[ApiKey, Depends(require_roles("admin", "annotator"))]) -> dict:
    """Import preference pairs. They become training data for reward models, so an application key
    (which serves decisions and may be exposed with a client) may not write them: annotator or admin."""
    parsed = []
    for i, record in enumerate(body.pairs):
        try:
            parsed.append((i + 1, pair_from_record(record)))
        except PairParseError as exc:
            raise InvalidInput(f"pairs[{i}]: {exc}; nothing was imported", details={"index": i}) from None
    report = import_pairs(session, parsed, source=body.source, actor=f"key:{key.id}")
    session.commit()
    return report.to_dict()


@router.get("")
def get_pairs(session: SessionDep, _: Annotated[ApiKey, Depends(require_roles("admin", "annotator", "reviewer"))],
              format: Literal["prompt", "conversational", "hh"] | None = None,
              source: str | None = None, limit: int = Query(1000, ge=1, le=100_000)) -> list[dict]:
    out = []
    for pair in export_pairs(session, source=source):
        out.append(pair_to_record(pair, format))
        if len(out) >= limit:
            break
    return out
