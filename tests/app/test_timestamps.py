"""Timestamps read back from the store are timezone-aware UTC on SQLite as on PostgreSQL (issue 21.7e).

SQLite stores datetimes as text without an offset, so before ``UTCDateTime`` they came back naive and
the API rendered them without a zone ("2026-12-07T22:10:00.123456"), while PostgreSQL's gave "+00:00".
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session, select

from app.audit import append_audit
from app.db import session_scope
from app.models import ApiKey, AuditEntry, LabelJob

pytestmark = pytest.mark.both_databases


def test_timestamps_come_back_in_utc(engine):
    with session_scope(engine) as s:
        append_audit(s, "tester", "thing.changed", "thing", "t1")
        # An aware time in another zone is stored as the same instant, in UTC.
        s.add(LabelJob(id="j1", created_at=datetime(2026, 12, 7, 23, 30, tzinfo=timezone(timedelta(hours=1)))))
    with Session(engine) as s:
        entry = s.exec(select(AuditEntry)).one()
        job = s.get(LabelJob, "j1")
    assert entry.ts.tzinfo is not None and entry.ts.utcoffset() == timedelta(0)
    assert job.created_at == datetime(2026, 12, 7, 22, 30, tzinfo=timezone.utc)
    assert job.created_at.utcoffset() == timedelta(0) and job.finished_at is None


def test_api_renders_timestamps_with_their_zone(client, auth):
    keys = client.get("/v1/keys", headers=auth("admin")).json()
    created = keys[0]["created_at"]
    assert created.endswith(("+00:00", "Z")), created
    assert datetime.fromisoformat(created).utcoffset() == timedelta(0)
    with Session(client.app.state.engine) as s:
        assert s.exec(select(ApiKey)).first().created_at.tzinfo is not None
