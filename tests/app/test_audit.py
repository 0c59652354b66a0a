"""The audit chain detects rows altered, removed or reordered directly in the database."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

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


# --- a database writer without the audit key (issue 21.5) -------------------------------------------

SECRET = "an-audit-test-secret-of-more-than-32-chars"


@pytest.fixture
def keyed(settings):
    """An engine whose audit entries are MACed (the settings carry a real secret), and its key."""
    from app.audit import audit_key
    from app.db import get_engine, upgrade_schema

    keyed_settings = settings.model_copy(update={"secret_key": SECRET})
    engine = get_engine(keyed_settings)
    upgrade_schema(engine)
    return engine, audit_key(keyed_settings)


def _rewrite_from(engine, seq: int, change=None) -> None:
    """What a database writer can do without the key: change entry ``seq`` (or nothing) and recompute every
    hash from there on, links and head included, leaving the MAC columns as they were."""
    from app.audit import entry_hash
    from app.models import AuditEntry, AuditHead

    with session_scope(engine) as s:
        entries = s.exec(select(AuditEntry).where(AuditEntry.seq >= seq).order_by(AuditEntry.seq)).all()
        prev = s.get(AuditEntry, seq - 1).hash if seq > 1 else "0" * 64
        for e in entries:
            if change and e.seq == seq:
                change(e)
            e.prev_hash = prev
            e.hash = entry_hash(e.prev_hash, e.seq, e.ts, e.actor, e.action, e.subject_type, e.subject_id, e.details)
            prev = e.hash
            s.add(e)
        head = s.get(AuditHead, 1)
        head.hash = prev
        s.add(head)


def _forge_append(engine, mac=None, key_id=None) -> None:
    """Append an entry that links correctly and move the head, as a writer without the key would."""
    from app.audit import entry_hash
    from app.models import AuditEntry, AuditHead, utcnow

    with session_scope(engine) as s:
        head = s.get(AuditHead, 1)
        seq, ts, details = head.seq + 1, utcnow(), {"role": "admin"}
        digest = entry_hash(head.hash, seq, ts, "cli", "key.created", "api_key", "mallory", details)
        s.add(AuditEntry(seq=seq, ts=ts, actor="cli", action="key.created", subject_type="api_key", subject_id="mallory",
                         details=details, prev_hash=head.hash, hash=digest, mac=mac, key_id=key_id))
        head.seq, head.hash = seq, digest
        s.add(head)


def test_keyed_entries_carry_a_mac_and_verify(keyed):
    engine, key = keyed
    _fill(engine)
    with Session(engine) as s:
        report = verify_chain(s, key=key)
        assert report.ok and report.keyed_entries == 5 and report.unkeyed_legacy == 0 and report.warnings == []
        from app.models import AuditEntry

        assert all(e.mac and len(e.mac) == 64 for e in s.exec(select(AuditEntry)).all())


def test_edited_entry_with_recomputed_hashes_fails_its_mac(keyed):
    """The writer edits entry 3 and recomputes every hash after it and the head: the hash chain is consistent
    again (this passed `audit verify` before entries were keyed), but entry 3's MAC no longer matches."""
    engine, key = keyed
    _fill(engine)
    _rewrite_from(engine, 3, change=lambda e: setattr(e, "details", {"i": 99}))
    with Session(engine) as s:
        assert verify_chain(s, key=None).first_bad_seq is None  # the unkeyed check is fooled
        report = verify_chain(s, key=key)
    assert not report.ok and report.first_bad_seq == 3 and "MAC" in report.problem


@pytest.mark.parametrize("forged", ["no mac", "made-up mac", "mac of the genesis"])
def test_forged_appended_entry_with_head_moved_is_detected(keyed, forged):
    from app.audit import key_id

    engine, key = keyed
    _fill(engine, 3)
    kid = key_id(key)
    mac, mac_key_id = {"no mac": (None, None), "made-up mac": ("ab" * 32, kid),
                       "mac of the genesis": ("0" * 64, kid)}[forged]
    _forge_append(engine, mac, mac_key_id)
    with Session(engine) as s:
        report = verify_chain(s, key=key)
    assert not report.ok and report.first_bad_seq == 4, report


def _filled_and_exported(keyed, n: int):
    """``n`` audit entries written, then the head checkpoint exported: ``(engine, key, checkpoint)``."""
    from app.audit import head_checkpoint

    engine, key = keyed
    _fill(engine, n)
    with Session(engine) as s:
        return engine, key, head_checkpoint(s, key)


def test_truncation_with_head_rewound_is_caught_by_the_exported_head(keyed):
    """Every remaining entry is genuine, so only a head kept outside the database can tell."""
    from app.models import AuditEntry, AuditHead

    engine, key, exported = _filled_and_exported(keyed, 5)
    assert exported.seq == 5 and exported.mac
    with session_scope(engine) as s:
        for seq in (4, 5):
            s.delete(s.get(AuditEntry, seq))
        head = s.get(AuditHead, 1)
        head.seq, head.hash = 3, s.get(AuditEntry, 3).hash
        s.add(head)
    with Session(engine) as s:
        assert verify_chain(s, key=key).ok  # what a MAC alone cannot see
        report = verify_chain(s, key=key, expect=exported)
    assert not report.ok and report.first_bad_seq == 4 and "exported head is entry 5" in report.problem


def test_history_rewritten_before_the_exported_head_is_detected(keyed):
    engine, key, exported = _filled_and_exported(keyed, 4)
    _rewrite_from(engine, 2, change=lambda e: setattr(e, "actor", "someone-else"))
    with Session(engine) as s:
        report = verify_chain(s, key=None, expect=exported)  # even without the key
    assert not report.ok and report.first_bad_seq == 4 and "differs from the exported head" in report.problem


def test_altered_checkpoint_is_refused(keyed):
    from dataclasses import replace

    engine, key, exported = _filled_and_exported(keyed, 3)
    with Session(engine) as s:
        report = verify_chain(s, key=key, expect=replace(exported, seq=2))
    assert not report.ok and "checkpoint itself was altered" in report.problem


def test_legacy_entries_verify_and_are_reported_then_keyed_ones_follow(engine, settings):
    """Rows written before a key existed verify as unkeyed legacy; once keyed, an unkeyed entry is a forgery."""
    from app.audit import audit_key
    from app.db import get_engine

    _fill(engine, 3)  # the test settings use the default secret: no key, no MAC
    keyed_settings = settings.model_copy(update={"secret_key": SECRET})
    key = audit_key(keyed_settings)
    keyed_engine = get_engine(keyed_settings)  # same database, now with the key
    _fill(keyed_engine, 2)
    with Session(keyed_engine) as s:
        report = verify_chain(s, key=key)
    assert report.ok and report.unkeyed_legacy == 3 and report.keyed_entries == 2
    assert "before the audit log was keyed" in report.warnings[0]
    _forge_append(keyed_engine)  # an unkeyed entry after keyed ones
    with Session(keyed_engine) as s:
        report = verify_chain(s, key=key)
    assert not report.ok and report.first_bad_seq == 6 and "no MAC" in report.problem


def test_writer_without_the_key_is_refused_on_a_keyed_chain(keyed, settings):
    from app.db import get_engine
    from app.errors import Unavailable

    engine, _ = keyed
    _fill(engine, 1)
    unkeyed = get_engine(settings)  # the default secret: no audit key
    with pytest.raises(Unavailable, match="keyed with audit key"), session_scope(unkeyed) as s:
        append_audit(s, "tester", "thing.changed", "thing", "x")
    other = get_engine(settings.model_copy(update={"secret_key": "another-secret-of-more-than-32-characters"}))
    with pytest.raises(Unavailable, match="keyed with audit key"), session_scope(other) as s:
        append_audit(s, "tester", "thing.changed", "thing", "x")


def test_entries_under_another_key_are_named(keyed):
    from app.audit import audit_key

    engine, _ = keyed
    _fill(engine, 2)
    from app.settings import Settings

    other = audit_key(Settings(audit_key="another-secret-of-more-than-32-characters"))
    with Session(engine) as s:
        report = verify_chain(s, key=other)
    assert not report.ok and report.first_bad_seq == 1 and "not the configured key" in report.problem


def test_cli_head_export_then_verify_detects_truncation(keyed, run_cli, monkeypatch, tmp_path):
    from app.models import AuditEntry, AuditHead
    from app.settings import get_settings

    engine, _ = keyed
    monkeypatch.setenv("ARBITER_SECRET_KEY", SECRET)
    get_settings.cache_clear()
    _fill(engine, 4)
    exported = run_cli("audit", "head", "--json")
    assert exported.exit_code == 0, exported.output
    checkpoint = json.loads(exported.stdout)
    assert checkpoint["seq"] == 4 and checkpoint["mac"] and checkpoint["expect_head"] == f"4:{checkpoint['hash']}"
    anchor = tmp_path / "anchors.jsonl"  # what a cron job appends to
    anchor.write_text("\n" + exported.stdout)
    assert run_cli("audit", "head").stdout.strip() == checkpoint["expect_head"]
    ok = run_cli("audit", "verify", "--json", "--expect-head", str(anchor))
    assert ok.exit_code == 0 and json.loads(ok.stdout)["keyed_entries"] == 4
    with session_scope(engine) as s:
        s.delete(s.get(AuditEntry, 4))
        head = s.get(AuditHead, 1)
        head.seq, head.hash = 3, s.get(AuditEntry, 3).hash
        s.add(head)
    assert run_cli("audit", "verify").exit_code == 0
    for given in (str(anchor), checkpoint["expect_head"], exported.stdout):
        bad = run_cli("audit", "verify", "--json", "--expect-head", given)
        assert bad.exit_code == 1 and json.loads(bad.stdout)["first_bad_seq"] == 4
    assert "exported head is entry 4" in run_cli("audit", "verify", "--expect-head", str(anchor)).stdout
    garbage = run_cli("audit", "verify", "--expect-head", "4:nothex")
    assert garbage.exit_code == 2 and "SEQ:HASH" in garbage.output


def test_session_on_a_connection_finds_the_key(keyed):
    engine, key = keyed
    with engine.connect() as conn:
        with Session(bind=conn) as s:
            mac = append_audit(s, "tester", "thing.changed", "thing", "c1").mac
            s.commit()
        conn.commit()
    assert mac
    with Session(engine) as s:
        assert verify_chain(s, key=key).keyed_entries == 1


def test_stripping_every_mac_is_caught_by_the_exported_head(keyed):
    """Edit an entry, recompute the hashes and strip every MAC: without an anchor the chain reads as unkeyed legacy
    (reported, with a warning); the exported head says entries were keyed from entry 1 on."""
    from app.audit import head_checkpoint
    from app.models import AuditEntry, AuditHead

    engine, key = keyed
    _fill(engine, 3)
    with Session(engine) as s:
        exported = head_checkpoint(s, key)
    assert exported.keyed_from == 1
    _fill(engine, 2)  # entries written after the export
    _rewrite_from(engine, 4, change=lambda e: setattr(e, "details", {"i": 99}))
    with session_scope(engine) as s:
        for e in s.exec(select(AuditEntry)).all():
            e.mac = e.key_id = None
            s.add(e)
        head = s.get(AuditHead, 1)
        head.key_id = None
        s.add(head)
    with Session(engine) as s:
        blind = verify_chain(s, key=key)
        assert blind.ok and blind.unkeyed_legacy == 5 and blind.keyed_entries == 0 and blind.warnings
        report = verify_chain(s, key=key, expect=exported)
    assert not report.ok and report.first_bad_seq == 1 and "MACs stripped" in report.problem


def test_api_verify_takes_an_exported_head(keyed, settings):
    """GET /v1/audit/verify checks MACs with the server's key, and an exported head given as expect_head."""
    from fastapi.testclient import TestClient

    from app.api.main import create_app
    from app.audit import head_checkpoint
    from app.auth import create_key
    from app.models import AuditEntry, AuditHead

    engine, key = keyed
    app = create_app(settings.model_copy(update={"secret_key": SECRET}))
    with TestClient(app) as client:
        with session_scope(engine) as s:
            _, secret = create_key(s, "admin", "auditor", actor="test")  # audited: entry 1
        headers = {"Authorization": f"Bearer {secret}"}
        _fill(engine, 3)
        with Session(engine) as s:
            exported = head_checkpoint(s, key)
        ok = client.get("/v1/audit/verify", params={"expect_head": json.dumps(exported.to_dict())}, headers=headers).json()
        assert ok["ok"] and ok["keyed_entries"] == 4 and ok["expected_head"] == 4
        with session_scope(engine) as s:
            s.delete(s.get(AuditEntry, 4))
            head = s.get(AuditHead, 1)
            head.seq, head.hash = 3, s.get(AuditEntry, 3).hash
            s.add(head)
        assert client.get("/v1/audit/verify", headers=headers).json()["ok"]
        bad = client.get("/v1/audit/verify", params={"expect_head": f"{exported.seq}:{exported.hash}"}, headers=headers).json()
        assert not bad["ok"] and bad["first_bad_seq"] == 4
        garbage = client.get("/v1/audit/verify", params={"expect_head": "nonsense"}, headers=headers)
        assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "invalid_input"
