"""Factory helpers for store rows the app tests build again and again."""

from __future__ import annotations

import uuid

from alembic import command
from alembic.config import Config

from app.models import Candidate, Comparison, Task


def add_comparison(s, prompt: str, a: str, b: str, *, a_hash: str | None = None, b_hash: str | None = None,
                   task_hash: str | None = None, source: str | None = None) -> Comparison:
    """A task with one user message, two candidates and their comparison, flushed so that ids are set.

    Hashes default to a fresh uuid (task) and the candidate's own text; ``source`` is set on the task
    and the comparison when given."""
    extra = {"source": source} if source is not None else {}
    task = Task(prompt=[{"role": "user", "content": prompt}], content_hash=task_hash or uuid.uuid4().hex, **extra)
    s.add(task)
    s.flush()
    first = Candidate(task_id=task.id, content=a, content_hash=a if a_hash is None else a_hash)
    second = Candidate(task_id=task.id, content=b, content_hash=b if b_hash is None else b_hash)
    s.add_all([first, second])
    s.flush()
    comparison = Comparison(task_id=task.id, candidate_a_id=first.id, candidate_b_id=second.id,
                            pair_hash=uuid.uuid4().hex, **extra)
    s.add(comparison)
    s.flush()
    return comparison


def upgrade_to(engine, revision: str) -> None:
    """Migrate the store up to ``revision`` only (to write rows in an older schema before upgrading the rest)."""
    cfg = Config()
    cfg.set_main_option("script_location", "app/migrations")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
