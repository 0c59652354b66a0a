"""The append-only, hash-chained, keyed audit log.

Each entry's hash covers its own content and the previous entry's hash, and ``audit_head`` holds the
newest sequence number and hash. Editing, deleting or reordering rows directly in the database
therefore breaks the chain at a definite entry, which ``verify_chain`` names.

A hash chain alone does not stop someone who can write to the database: they can edit an entry and
recompute every hash after it, or append an entry and move the head. So each entry also carries a
MAC (HMAC-SHA256 over its hash) under the *audit key*, which lives in the settings, never in the
database (``ARBITER_AUDIT_KEY``, or derived from ``ARBITER_SECRET_KEY``; see ``audit_key``). Without
the key a database writer cannot produce a valid entry, so ``verify_chain`` with the key detects
edited entries with recomputed hashes and forged appended entries.

What a MAC cannot detect is the newest entries cut off with the head rewound to an older, genuine
entry: every remaining entry is still valid. For that, export the head (``head_checkpoint``,
``arbiter audit head``) to somewhere the database's writers cannot change, and verify against it
(``verify_chain(expect=...)``, ``arbiter audit verify --expect-head``): the exported entry must still
be in the chain with the same hash. The README says how to anchor checkpoints outside the database.

Entries written before a key was configured (or while the secret key is the shipped default) carry
no MAC: they verify as *unkeyed legacy* entries, hash-chained only, and are reported as such. They
may only precede keyed ones: an unkeyed entry after a keyed one is a forgery or a stripped MAC. For
the same reason a process without the chain's key refuses to append to a keyed chain. A writer who
strips *every* MAC could pass a rewritten chain off as legacy; the count of unkeyed entries says so,
and an exported head records the first keyed entry (``keyed_from``), after which none may be unkeyed.

Appends take a row lock on the head (PostgreSQL) or run inside SQLite's immediate transaction, so
concurrent writers never fork the chain. ``append_audit`` joins the caller's transaction: the entry
exists exactly when the change it describes was committed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import URL, Engine
from sqlmodel import Session, col, func, select

from app.errors import InvalidInput, Unavailable
from app.models import AuditEntry, AuditHead, utcnow
from app.settings import DEFAULT_SECRET, Settings

__all__ = [
    "append_audit", "audit_key", "bind_audit_key", "entry_hash", "entry_mac", "head_checkpoint",
    "key_id", "parse_checkpoint", "verify_chain", "ChainReport", "Checkpoint",
]

GENESIS = "0" * 64
_KEY_CONTEXT = b"arbiter audit log v1"


# --- the key -------------------------------------------------------------------------------------


def audit_key(settings: Settings) -> bytes | None:
    """The MAC key: derived from ``ARBITER_AUDIT_KEY`` if set, else from ``ARBITER_SECRET_KEY``; None
    while the secret is the shipped default (a key everyone knows protects nothing)."""
    material = settings.audit_key or (settings.secret_key if settings.secret_key != DEFAULT_SECRET else "")
    if not material:
        return None
    return hmac.new(material.encode("utf-8"), _KEY_CONTEXT, hashlib.sha256).digest()


def key_id(key: bytes) -> str:
    """A public fingerprint of the key (16 hex digits): tells "another key" from "forged" in reports."""
    return hmac.new(key, b"key-id", hashlib.sha256).hexdigest()[:16]


def entry_mac(key: bytes, entry_hash_hex: str) -> str:
    return hmac.new(key, b"entry\x00" + entry_hash_hex.encode("ascii"), hashlib.sha256).hexdigest()


def _checkpoint_mac(key: bytes, seq: int, hash_hex: str, keyed_from: int | None) -> str:
    return hmac.new(key, f"head\x00{seq}\x00{hash_hex}\x00{keyed_from}".encode("ascii"), hashlib.sha256).hexdigest()


# Which key appends to which database: set by ``app.db.get_engine`` from the settings it was given, so
# the many callers of ``append_audit`` need not carry the key. Keyed by URL so that the read-only
# variant of an engine (same URL) finds it too; a process has one settings, so one key per URL.
_BOUND_KEYS: dict[URL, bytes | None] = {}


def bind_audit_key(engine: Engine, key: bytes | None) -> None:
    _BOUND_KEYS[engine.url] = key


def _bound_key(session: Session) -> bytes | None:
    bind = session.get_bind()  # an Engine, or a Connection when the session was opened on one
    return _BOUND_KEYS.get(bind.engine.url)


# --- writing -------------------------------------------------------------------------------------


def _canonical_ts(ts: datetime) -> str:
    # Older rows may have been read back naive from SQLite; both backends store UTC.
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
    """Append an entry in the caller's transaction and return it (MACed when this process has a key)."""
    # Imported here: safety.pii loads Presidio and spaCy (seconds), and every CLI command imports this module
    # through app.db, most of them never appending.
    from safety.pii import redact_values

    # What the JSON column will give back, without personal data (a reviewer's note, a correction's feedback).
    details = redact_values(json.loads(json.dumps(details or {}, default=str)))
    key = _bound_key(session)
    kid = key_id(key) if key else None
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    if head.key_id and head.key_id != kid:
        # Appending would break verification for good (an unkeyed entry after keyed ones reads as a forgery).
        raise Unavailable(f"the audit log is keyed with audit key {head.key_id}; this process has "
                          + (f"key {kid}" if kid else "no audit key")
                          + ": set the same ARBITER_AUDIT_KEY (or ARBITER_SECRET_KEY) as the server", code="audit_key_mismatch")
    prev_hash = head.hash or GENESIS
    seq = head.seq + 1
    ts = utcnow()
    digest = entry_hash(prev_hash, seq, ts, actor, action, subject_type, str(subject_id), details)
    entry = AuditEntry(
        seq=seq, ts=ts, actor=actor, action=action, subject_type=subject_type, subject_id=str(subject_id),
        details=details, prev_hash=prev_hash, hash=digest,
        mac=entry_mac(key, digest) if key else None, key_id=kid,
    )
    head.seq, head.hash = seq, entry.hash
    if kid:
        head.key_id = kid
    session.add(entry)
    session.add(head)
    session.flush()
    return entry


# --- checkpoints ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """An exported head: the newest entry's sequence number and hash, and the first keyed entry, MACed when
    there is a key. ``keyed_from`` stops a writer from stripping every MAC from there on and passing the
    entries off as unkeyed legacy ones (their hashes do not cover their MACs)."""

    seq: int
    hash: str
    key_id: str | None = None
    mac: str | None = None
    exported_at: str | None = None
    keyed_from: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "keyed_from": self.keyed_from, "key_id": self.key_id,
                "mac": self.mac, "exported_at": self.exported_at, "expect_head": f"{self.seq}:{self.hash}"}


def head_checkpoint(session: Session, key: bytes | None) -> Checkpoint:
    """The current head as a checkpoint to store outside the database (export it from a verified chain)."""
    head = session.get(AuditHead, 1)
    seq, digest = (head.seq, head.hash or GENESIS) if head else (0, GENESIS)
    keyed_from = session.exec(select(func.min(AuditEntry.seq)).where(col(AuditEntry.mac).is_not(None))).one()
    return Checkpoint(seq, digest, key_id(key) if key else None,
                      _checkpoint_mac(key, seq, digest, keyed_from) if key else None,
                      utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"), keyed_from)


_SEQ_HASH = re.compile(r"^(\d{1,18}):([0-9a-f]{64})$")


def parse_checkpoint(text: str) -> Checkpoint:
    """``SEQ:HASH`` or the JSON object ``arbiter audit head --json`` prints."""
    text = text.strip()
    match = _SEQ_HASH.match(text)
    if match:
        return Checkpoint(int(match.group(1)), match.group(2))
    try:
        obj = json.loads(text)
        seq, digest = obj["seq"], obj["hash"]
        if not (isinstance(seq, int) and seq >= 0 and isinstance(digest, str) and re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidInput("an exported head is SEQ:HASH (64 hex digits) or the JSON object of `arbiter audit head --json`") from None
    keyed_from = obj.get("keyed_from")
    if keyed_from is not None and not (isinstance(keyed_from, int) and keyed_from >= 1):
        raise InvalidInput("an exported head's keyed_from is a sequence number")
    return Checkpoint(seq, digest, obj.get("key_id"), obj.get("mac"), obj.get("exported_at"), keyed_from)


# --- verifying -----------------------------------------------------------------------------------


@dataclass
class ChainReport:
    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    problem: str | None = None
    keyed_entries: int = 0  # entries whose MAC was checked and matched
    unkeyed_legacy: int = 0  # entries written before the chain was keyed: hash-chained only
    key_id: str | None = None  # the configured key's fingerprint (None: MACs were not checked)
    expected_head: int | None = None  # the exported head's sequence number, when one was given
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "warnings": list(self.warnings)}


class _Broken(Exception):
    def __init__(self, seq: int, problem: str):
        self.seq, self.problem = seq, problem


def _check_mac(e: AuditEntry, key: bytes | None, kid: str | None, keyed_seen: bool) -> str:
    """'legacy', 'keyed' or 'unchecked'; raises _Broken for an entry that fails its MAC."""
    if e.mac is None:
        if keyed_seen:
            raise _Broken(e.seq, f"entry {e.seq} carries no MAC although earlier entries do: it was written "
                                 "without the audit key (forged, or its MAC stripped)")
        return "legacy"
    if key is None:
        return "unchecked"
    if e.key_id != kid:
        raise _Broken(e.seq, f"entry {e.seq} claims audit key {e.key_id}, not the configured key {kid}: "
                             "forged, or the key was changed")
    if not hmac.compare_digest(e.mac, entry_mac(key, e.hash)):
        raise _Broken(e.seq, f"entry {e.seq} fails its MAC: it was written or edited without the audit key")
    return "keyed"


def verify_chain(session: Session, batch: int = 5000, *, key: bytes | None | str = "bound",
                 expect: Checkpoint | None = None) -> ChainReport:
    """Walk the chain from the first entry; report the first entry that does not fit.

    ``key`` checks the MACs (default: the key bound to the session's engine, from its settings);
    ``expect`` is an exported head that must still be in the chain, unchanged."""
    key = _bound_key(session) if isinstance(key, str) else key
    kid = key_id(key) if key else None
    head = session.get(AuditHead, 1)
    head_seq = head.seq if head else 0
    head_hash = (head.hash if head else GENESIS) or GENESIS
    report = ChainReport(True, 0, head_seq, head_hash, key_id=kid, expected_head=expect.seq if expect else None)
    counts = {"legacy": 0, "keyed": 0, "unchecked": 0}
    prev_hash, expected_seq, last_seq = GENESIS, 1, 0
    try:
        if expect is not None and expect.mac and key is not None and expect.key_id == kid:
            if not hmac.compare_digest(expect.mac, _checkpoint_mac(key, expect.seq, expect.hash, expect.keyed_from)):
                raise _Broken(expect.seq, "the exported head's MAC does not match it: the checkpoint itself was altered")
        while True:
            rows = session.exec(select(AuditEntry).where(AuditEntry.seq > last_seq).order_by(AuditEntry.seq).limit(batch)).all()
            if not rows:
                break
            for e in rows:
                report.entries += 1
                if e.seq != expected_seq:
                    raise _Broken(expected_seq, f"entry {expected_seq} is missing (next is {e.seq})")
                if e.prev_hash != prev_hash:
                    raise _Broken(e.seq, f"entry {e.seq} does not link to entry {e.seq - 1} (removed, reordered or altered)")
                recomputed = entry_hash(e.prev_hash, e.seq, e.ts, e.actor, e.action, e.subject_type, e.subject_id, e.details)
                if recomputed != e.hash:
                    raise _Broken(e.seq, f"entry {e.seq} was altered: its content does not match its hash")
                if expect is not None and expect.keyed_from is not None and e.seq >= expect.keyed_from and e.mac is None:
                    raise _Broken(e.seq, f"entry {e.seq} carries no MAC, but the exported head says entries were keyed "
                                         f"from entry {expect.keyed_from} on: MACs stripped")
                counts[_check_mac(e, key, kid, counts["keyed"] + counts["unchecked"] > 0)] += 1
                if expect is not None and e.seq == expect.seq and e.hash != expect.hash:
                    raise _Broken(e.seq, f"entry {e.seq} differs from the exported head: the chain was rewritten from there on")
                prev_hash, expected_seq = e.hash, e.seq + 1
            last_seq = rows[-1].seq
        last = expected_seq - 1
        if expect is not None and expect.seq > last:
            raise _Broken(last + 1, f"the exported head is entry {expect.seq} but the chain ends at entry {last}: "
                                    "newest entries removed and the head rewound")
        if last != head_seq or prev_hash != head_hash:
            raise _Broken(last + 1 if last < head_seq else head_seq + 1,
                          f"the chain ends at entry {last} but the head records entry {head_seq}: newest entries removed or head altered")
    except _Broken as broken:
        report.ok, report.first_bad_seq, report.problem = False, broken.seq, broken.problem
    report.keyed_entries, report.unkeyed_legacy = counts["keyed"], counts["legacy"]
    if counts["legacy"]:
        report.warnings.append(f"{counts['legacy']} entries were written before the audit log was keyed: "
                               "they are hash-chained only (a database writer could have rewritten them)")
    if counts["unchecked"]:
        report.warnings.append(f"{counts['unchecked']} MACs were not checked: no audit key is configured here "
                               "(set ARBITER_AUDIT_KEY or ARBITER_SECRET_KEY as on the server)")
    if expect is not None and expect.key_id and expect.key_id != kid:
        report.warnings.append(f"the exported head was MACed with audit key {expect.key_id}, not this one: its MAC was not checked")
    return report
