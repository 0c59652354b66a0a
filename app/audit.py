"""The append-only, hash-chained audit log.

Each entry's hash covers its own content and the previous entry's hash, and ``audit_head`` holds the
newest sequence number and hash. Editing, deleting or reordering rows directly in the database
therefore breaks the chain at a definite entry, which ``verify_chain`` names. What it cannot do:
stop someone who rewrites the whole chain and the head consistently; export the head hash
regularly (``arbiter audit verify --json`` prints it) to anchor it outside the database.

Appends take a row lock on the head (PostgreSQL) or run inside SQLite's immediate transaction, so
concurrent writers never fork the chain. ``append_audit`` joins the caller's transaction: the entry
exists exactly when the change it describes was committed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlmodel import Session, select

from app.models import AuditEntry, AuditHead, utcnow

__all__ = ["append_audit", "verify_chain", "ChainReport", "entry_hash"]

GENESIS = "0" * 64


def _canonical_ts(ts: datetime) -> str:
    # SQLite returns naive datetimes; both backends store UTC, so normalise before hashing.
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(prev_hash: str, seq: int, ts: datetime, actor: str, action: str, subject_type: str, subject_id: str, details: dict) -> str:
    payload = json.dumps(
        [prev_hash, seq, _canonical_ts(ts), actor, action, subject_type, subject_id, details],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def append_audit(session: Session, actor: str, action: str, subject_type: str, subject_id: str, details: dict | None = None) -> AuditEntry:
    """Append an entry in the caller's transaction and return it."""
    details = json.loads(json.dumps(details or {}, default=str))  # what the JSON column will give back
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    prev_hash = head.hash or GENESIS
    seq = head.seq + 1
    ts = utcnow()
    entry = AuditEntry(
        seq=seq, ts=ts, actor=actor, action=action, subject_type=subject_type, subject_id=str(subject_id),
        details=details, prev_hash=prev_hash,
        hash=entry_hash(prev_hash, seq, ts, actor, action, subject_type, str(subject_id), details),
    )
    head.seq, head.hash = seq, entry.hash
    session.add(entry)
    session.add(head)
    session.flush()
    return entry


@dataclass
class ChainReport:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Walk the chain from the first entry; report the first entry that does not fit."""
    head = session.get(AuditHead, 1)
    head_seq = head.seq if head else 0
    head_hash = (head.hash if head else GENESIS) or GENESIS
    prev_hash, expected_seq, count = GENESIS, 1, 0
    last_seq = 0
    while True:
        rows = session.exec(select(AuditEntry).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(batch)).all()
        if not rows:
            break
        for e in rows:
            count += 1
            if e.seq != expected_seq:
                return ChainReport(False, count, head_seq, head_hash, expected_seq, f"entry {expected_seq} is missing (next is {e.seq})")
            if e.prev_hash != prev_hash:
                return ChainReport(False, count, head_seq, head_hash, e.seq, f"entry {e.seq} does not link to entry {e.seq - 1} (removed, reordered or altered)")
            recomputed = entry_hash(e.prev_hash, e.seq, e.ts, e.actor, e.action, e.subject_type, e.subject_id, e.details)
            if recomputed != e.hash:
                return ChainReport(False, count, head_seq, head_hash, e.seq, f"entry {e.seq} was altered: its content does not match its hash")
            prev_hash, expected_seq = e.hash, e.seq + 1
        last_seq = rows[-1].seq
    if expected_seq - 1 != head_seq or prev_hash != head_hash:
        first_bad = expected_seq if expected_seq - 1 < head_seq else head_seq + 1
        return ChainReport(False, count, head_seq, head_hash, first_bad,
                           f"the chain ends at entry {expected_seq - 1} but the head records entry {head_seq}: newest entries removed or head altered")
    return ChainReport(True, count, head_seq, head_hash)
