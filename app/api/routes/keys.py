"""API keys (admin) and ``whoami`` (any key)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.deps import AdminKey, AnyKey, SessionDep
from app.auth import create_key, list_keys, revoke_key
from app.models import ApiKeyPublic

router = APIRouter(prefix="/v1", tags=["keys"])


class KeyCreate(BaseModel):
    role: Literal["admin", "app", "annotator", "reviewer"]
    name: str = Field("", max_length=100)


class KeyCreated(ApiKeyPublic):
    secret: str = Field(description="The key itself; shown only in this response.")


class WhoAmI(BaseModel):
    id: str
    name: str
    role: str


@router.get("/whoami", response_model=WhoAmI)
def whoami(key: AnyKey) -> WhoAmI:
    return WhoAmI(id=key.id, name=key.name, role=key.role)


@router.get("/keys", response_model=list[ApiKeyPublic])
def get_keys(session: SessionDep, _: AdminKey) -> list:
    return list_keys(session)


@router.post("/keys", response_model=KeyCreated, status_code=201)
def post_key(body: KeyCreate, session: SessionDep, admin: AdminKey) -> KeyCreated:
    key, secret = create_key(session, body.role, body.name, actor=f"key:{admin.id}")
    session.commit()
    return KeyCreated(**ApiKeyPublic.model_validate(key, from_attributes=True).model_dump(), secret=secret)


@router.delete("/keys/{key_id}", response_model=ApiKeyPublic)
def delete_key(key_id: str, session: SessionDep, admin: AdminKey):
    key = revoke_key(session, key_id, actor=f"key:{admin.id}")
    session.commit()
    return key
