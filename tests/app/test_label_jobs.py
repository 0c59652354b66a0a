"""Which label jobs are stale (issue 21.7a): a `running` row whose process is gone, whose pid now belongs to a
later process, or whose heartbeat is older than the lease; the next run closes them as `interrupted`.

The end-to-end case (SIGKILL of a real `arbiter label`) is in test_label_cli.py; these cover each rule."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from sqlmodel import Session

from app.db import session_scope
from app.models import LabelJob, utcnow
from app.services.labels.jobs import LEASE, Heartbeat, close_stale_jobs, job_state, list_jobs

pytestmark = pytest.mark.both_databases


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _job(engine, job_id: str, **kw) -> None:
    now = utcnow()
    fields = {"host": socket.gethostname(), "pid": os.getpid(), "created_at": now, "heartbeat_at": now, **kw}
    with session_scope(engine) as s:
        s.add(LabelJob(id=job_id, params={"selected": 3}, **fields))


def test_each_rule(engine):
    later = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        old = utcnow() - timedelta(minutes=2)
        _job(engine, "alive")  # this very process, beating
        _job(engine, "dead-pid", pid=_dead_pid())
        _job(engine, "reused-pid", pid=later.pid, created_at=old)  # a process younger than the job
        _job(engine, "other-host-beating", host="elsewhere", pid=1)
        _job(engine, "other-host-silent", host="elsewhere", pid=1, heartbeat_at=utcnow() - LEASE - timedelta(seconds=1))
        _job(engine, "legacy-row", host=None, pid=None, heartbeat_at=None, created_at=utcnow() - LEASE * 2)
        _job(engine, "done", status="finished", pid=_dead_pid(), finished_at=utcnow())
        with Session(engine) as s:
            states = {row["id"]: row["status"] for row in list_jobs(s)}
        assert states == {"alive": "running", "dead-pid": "stale", "reused-pid": "stale", "other-host-beating": "running",
                          "other-host-silent": "stale", "legacy-row": "stale", "done": "finished"}

        closed = close_stale_jobs(engine)
        assert sorted(closed) == ["dead-pid", "legacy-row", "other-host-silent", "reused-pid"]
        with Session(engine) as s:
            row = s.get(LabelJob, "other-host-silent")
            assert row.status == "interrupted" and row.finished_at == row.heartbeat_at
            assert s.get(LabelJob, "alive").status == "running"
            assert {r["id"]: r["status"] for r in list_jobs(s)}["dead-pid"] == "interrupted"
        assert close_stale_jobs(engine) == []
    finally:
        later.kill()
        later.wait()


def test_heartbeat_keeps_a_slow_job_alive(engine):
    _job(engine, "slow", heartbeat_at=utcnow() - LEASE - timedelta(seconds=5))
    with Session(engine) as s:
        assert job_state(s.get(LabelJob, "slow")) == "stale"
    with Heartbeat(engine, "slow", interval_s=0.05):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with Session(engine) as s:
                if job_state(s.get(LabelJob, "slow")) == "running":
                    break
            time.sleep(0.05)
    with Session(engine) as s:
        assert job_state(s.get(LabelJob, "slow")) == "running"
