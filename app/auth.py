"""API keys: creation (the secret is shown once), hashing, lookup and revocation.

Keys look like ``ak_<role>_<random>``; only their SHA-256 is stored. A key is high-entropy random,
so a fast hash is the right tool here (unlike passwords, there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import secrets

from sqlmodel import Session, select

from app.audit import append_audit
from app.errors import InvalidInput, NotFound
from app.models import ROLES, ApiKey, utcnow

__all__ = ["create_key", "revoke_key", "list_keys", "authenticate", "hash_key"]


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(session: Session, role: str, name: str = "", actor: str = "cli") -> tuple[ApiKey, str]:
    """Create a key; returns the row and the secret, which is not stored anywhere."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")
    secret = f"ak_{role}_{secrets.token_urlsafe(32)}"
    key = ApiKey(name=name or f"{role} key", role=role, prefix=secret[: len(role) + 10], key_hash=hash_key(secret))
    session.add(key)
    session.flush()
    append_audit(session, actor, "key.created", "api_key", key.id, {"role": role, "name": key.name, "prefix": key.prefix})
    return key, secret


def revoke_key(session: Session, key_id: str, actor: str = "cli") -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        # Accept the visible prefix too, which is what `keys list` shows first.
        matches = session.exec(select(ApiKey).where(ApiKey.prefix == key_id)).all()
        if len(matches) != 1:
            raise NotFound(f"no API key with id or prefix {key_id!r}")
        key = matches[0]
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        append_audit(session, actor, "key.revoked", "api_key", key.id, {"role": key.role, "prefix": key.prefix})
    return key


def list_keys(session: Session, include_revoked: bool = True) -> list[ApiKey]:
    query = select(ApiKey).order_by(ApiKey.created_at)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))  # type: ignore[union-attr]
    return list(session.exec(query).all())


def authenticate(session: Session, secret: str) -> ApiKey | None:
    """The active key with this secret, or None."""
    if not secret:
        return None
    key = session.exec(select(ApiKey).where(ApiKey.key_hash == hash_key(secret))).first()
    if key is None or key.revoked_at is not None:
        return None
    return key
