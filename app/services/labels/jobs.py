"""The label-job table: who runs a job, whether it is still alive, and closing the ones that were killed.

A job row says ``running`` from the moment ``arbiter label`` starts until it writes its end; a process
killed with SIGKILL (or a machine that is lost) never writes it. So a running row records the host and
pid that run it, and a heartbeat that a thread refreshes every ``HEARTBEAT_S`` while the job runs.
A running row is *stale* when

- its host is this one and its process is gone, or the pid now belongs to a process started after
  the job (the pid was reused), or
- its heartbeat (its start, for rows from before heartbeats) is older than ``LEASE``: the only sign
  available for a job of another host.

Listings show stale rows as ``stale``; the next ``arbiter label`` closes them as ``interrupted``.
Nothing is lost with them: every commit of a run stores its labels with the job's progress, and the
rerun labels only what is left. This module does not kill processes or resume a job's row.
"""

from __future__ import annotations

import os
import socket
import threading
from datetime import datetime, timedelta
from typing import Any

import psutil
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.db import session_scope
from app.models import LabelJob, utcnow

__all__ = ["HEARTBEAT_S", "LEASE", "Heartbeat", "close_stale_jobs", "job_state", "list_jobs", "start_job"]

HEARTBEAT_S = 30.0
LEASE = timedelta(minutes=5)  # ten missed heartbeats


def start_job(engine: Engine, params: dict[str, Any]) -> LabelJob:
    """A new ``running`` row owned by this process."""
    now = utcnow()
    job = LabelJob(params=params, host=socket.gethostname(), pid=os.getpid(), created_at=now, heartbeat_at=now)
    with session_scope(engine) as session:
        session.add(job)
    return job


class Heartbeat:
    """Refreshes a running job's ``heartbeat_at`` from a daemon thread until the block ends.

    A thread rather than the labeling loop: a run waiting on slow API judges must not look dead."""

    def __init__(self, engine: Engine, job_id: str, interval_s: float = HEARTBEAT_S) -> None:
        self.engine, self.job_id, self.interval_s = engine, job_id, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"label-job-heartbeat-{job_id[:8]}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                with session_scope(self.engine) as session:
                    row = session.get(LabelJob, self.job_id)
                    if row is None or row.status != "running":
                        return
                    row.heartbeat_at = utcnow()
            except Exception:  # noqa: BLE001 - a missed beat only risks the row looking stale; labeling goes on
                continue

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _process_gone(pid: int, started: datetime) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        # One second of slack: the job row is written just after its process starts.
        return process.create_time() > started.timestamp() + 1.0
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:  # another user's live process
        return False


def job_state(job: LabelJob, now: datetime | None = None, host: str | None = None) -> str:
    """The row's status, with ``stale`` for a ``running`` job whose process is gone (see the module docstring)."""
    if job.status != "running":
        return job.status
    now = now or utcnow()
    last_sign = job.heartbeat_at or job.created_at
    if now - last_sign > LEASE:
        return "stale"
    if job.pid is not None and job.host == (host or socket.gethostname()) and _process_gone(job.pid, job.created_at):
        return "stale"
    return "running"


def _public(job: LabelJob, state: str) -> dict[str, Any]:
    return {"id": job.id, "status": state, "n_done": job.n_done, "cost_usd": job.cost_usd,
            "selected": job.params.get("selected"), "judges": job.params.get("judges"),
            "host": job.host, "pid": job.pid, "created_at": job.created_at.isoformat(),
            "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


def list_jobs(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    """The newest jobs, newest first, with stale ones shown as ``stale``."""
    rows = session.exec(select(LabelJob).order_by(col(LabelJob.created_at).desc()).limit(limit)).all()
    now, host = utcnow(), socket.gethostname()
    return [_public(job, job_state(job, now, host)) for job in rows]


def close_stale_jobs(engine: Engine) -> list[str]:
    """Mark every stale job ``interrupted`` (ended at its last heartbeat); returns their ids."""
    closed = []
    with session_scope(engine) as session:
        now, host = utcnow(), socket.gethostname()
        for job in session.exec(select(LabelJob).where(LabelJob.status == "running").with_for_update()).all():
            if job_state(job, now, host) == "stale":
                job.status, job.finished_at = "interrupted", job.heartbeat_at or job.created_at
                session.add(job)
                closed.append(job.id)
    return closed
