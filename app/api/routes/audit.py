"""The audit trail over HTTP (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from sqlmodel import select

from app.api.deps import AdminKey, SessionDep
from app.audit import parse_checkpoint, verify_chain
from app.input_values import INT32_MAX
from app.models import AuditEntry

router = APIRouter(prefix="/v1/audit", tags=["audit"])


@router.get("")
def list_entries(session: SessionDep, _: AdminKey,
                 after: int = Query(0, ge=0, le=INT32_MAX, description="Entries after this sequence number (a 32-bit column)."),
                 limit: int = Query(100, ge=1, le=1000),
                 action: str | None = None) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(limit)
    if action:
        query = query.where(AuditEntry.action == action)
    return list(session.exec(query).all())


@router.get("/verify")
def verify(session: SessionDep, _: AdminKey,
           expect_head: str | None = Query(None, max_length=2000, description=(
               "An exported head (SEQ:HASH, or the JSON of `arbiter audit head --json`) that must still be in the "
               "chain, unchanged."))) -> dict:
    """The hash chain, the entries' MACs (with the server's audit key) and, if given, an exported head;
    ``ok: false`` names the first bad entry."""
    return verify_chain(session, expect=parse_checkpoint(expect_head) if expect_head else None).to_dict()
