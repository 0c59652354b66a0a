"""The audit chain detects rows altered, removed or reordered directly in the database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlmodel import Session

from app.audit import append_audit, verify_chain
from app.db import session_scope

pytestmark = pytest.mark.both_databases


def _fill(engine, n: int = 5) -> None:
    with session_scope(engine) as s:
        for i in range(n):
            append_audit(s, "tester", "thing.changed", "thing", f"t{i}", {"i": i})


def _verify(engine):
    with Session(engine) as s:
        return verify_chain(s)


def test_intact_chain_verifies(engine):
    _fill(engine)
    report = _verify(engine)
    assert report.ok and report.entries == 5 and report.head_seq == 5


def test_altered_details_named(engine):
    _fill(engine)
    with engine.begin() as c:
        c.execute(text("UPDATE audit_entry SET details = :d WHERE seq = 3"), {"d": json.dumps({"i": 99})})
    report = _verify(engine)
    assert not report.ok and report.first_bad_seq == 3 and "altered" in report.problem


def test_altered_actor_named(engine):
    _fill(engine)
    with engine.begin() as c:
        c.execute(text("UPDATE audit_entry SET actor = 'mallory' WHERE seq = 2"))
    assert _verify(engine).first_bad_seq == 2


def test_deleted_middle_entry_named(engine):
    _fill(engine)
    with engine.begin() as c:
        c.execute(text("DELETE FROM audit_entry WHERE seq = 4"))
    report = _verify(engine)
    assert not report.ok and report.first_bad_seq == 4 and "missing" in report.problem


def test_deleted_newest_entry_detected_through_head(engine):
    _fill(engine)
    with engine.begin() as c:
        c.execute(text("DELETE FROM audit_entry WHERE seq = 5"))
    report = _verify(engine)
    assert not report.ok and report.first_bad_seq == 5


def test_reordered_entries_named(engine):
    """Swapping two entries' positions (their sequence numbers) breaks the links at the first one."""
    _fill(engine)
    with engine.begin() as c:
        c.execute(text("UPDATE audit_entry SET seq = 1000 WHERE seq = 2"))
        c.execute(text("UPDATE audit_entry SET seq = 2 WHERE seq = 3"))
        c.execute(text("UPDATE audit_entry SET seq = 3 WHERE seq = 1000"))
    report = _verify(engine)
    assert not report.ok and report.first_bad_seq == 2


def test_rewritten_hash_still_breaks_next_link(engine):
    """Recomputing an altered entry's own hash is not enough: the next entry links to the old one."""
    from app.audit import entry_hash
    from app.models import AuditEntry

    _fill(engine)
    with session_scope(engine) as s:
        e = s.get(AuditEntry, 2)
        e.details = {"i": 42}
        e.hash = entry_hash(e.prev_hash, e.seq, e.ts, e.actor, e.action, e.subject_type, e.subject_id, e.details)
        s.add(e)
    report = _verify(engine)
    assert not report.ok and report.first_bad_seq == 3


def test_cli_verify_exit_code(engine, run_cli):
    _fill(engine, 3)
    ok = run_cli("audit", "verify", "--json")
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"] is True
    with engine.begin() as c:
        c.execute(text("UPDATE audit_entry SET action = 'x' WHERE seq = 2"))
    bad = run_cli("audit", "verify", "--json")
    assert bad.exit_code == 1
    assert json.loads(bad.stdout.splitlines()[0])["first_bad_seq"] == 2
    text_out = run_cli("audit", "verify")
    assert "entry 2" in text_out.stdout
