"""FastAPI dependencies as ``Annotated`` aliases so tests can override them.

Authentication: ``Authorization: Bearer <key>`` (what the OpenAI SDK sends) or ``X-API-Key``.
``require_roles`` answers 401 without a valid key and 403 with a key of another role.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.auth import authenticate
from app.db import read_only
from app.models import ApiKey
from app.settings import Settings

__all__ = ["AdminKey", "AnyKey", "EngineDep", "ServingDep", "SessionDep", "SettingsDep", "require_roles"]


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_engine_dep(request: Request) -> Engine:
    return request.app.state.engine


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine_dep)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    """A session; services call ``commit()`` when their write is complete. Anything not committed
    (an exception half-way, say) is rolled back when the request ends."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


SessionDep = Annotated[Session, Depends(get_session)]


def _secret(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key", "").strip()


# The two ways to send a key, declared as OpenAPI security schemes (and the /docs "Authorize" button);
# `_secret` reads the same headers itself, so these never reject a request on their own.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer",
                    description="`Authorization: Bearer <key>` (what the OpenAI SDK sends).")
API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey",
                              description="`X-API-Key: <key>`, the same key.")


def require_roles(*roles: str):
    """Dependency factory: the caller's ApiKey, if its role is one of ``roles``."""

    def dependency(request: Request, engine: EngineDep,
                   _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)],
                   _header: Annotated[str | None, Security(API_KEY_HEADER)]) -> ApiKey:
        secret = _secret(request)
        if not secret:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer <key>'", headers={"WWW-Authenticate": "Bearer"})
        with Session(read_only(engine), expire_on_commit=False) as session:
            key = authenticate(session, secret)
        if key is None:
            raise HTTPException(401, "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        if key.role not in roles:
            raise HTTPException(403, f"role {key.role!r} may not do this; allowed: {', '.join(roles)}")
        request.state.api_key = key
        return key

    dependency.__name__ = f"require_{'_'.join(roles)}"
    return dependency


AnyKey = Annotated[ApiKey, Depends(require_roles("admin", "app", "annotator", "reviewer"))]
AdminKey = Annotated[ApiKey, Depends(require_roles("admin"))]


def get_serving_dep(request: Request, settings: SettingsDep, engine: EngineDep):
    from app.services.serving.stack import get_serving

    return get_serving(request.app.state, settings, engine)


ServingDep = Annotated[Any, Depends(get_serving_dep)]  # an app.services.serving.stack.Serving
