"""Creating tasks, candidates and comparisons from generated responses (idempotent by content hash)."""

from __future__ import annotations

from sqlmodel import Session, select

from app.models import Candidate, Comparison, Task
from app.services.labels.data_io import prompt_hash, text_hash

__all__ = ["add_comparison", "get_or_create_candidate", "get_or_create_task"]


def get_or_create_task(session: Session, prompt: list[dict], *, kind: str = "prompt", decision_type: str | None = None,
                       context: dict | None = None, source: str = "api", split: str | None = None) -> Task:
    h = prompt_hash(prompt, kind, decision_type, context)
    task = session.exec(select(Task).where(Task.content_hash == h)).first()
    if task is None:
        task = Task(kind=kind, decision_type=decision_type, prompt=prompt, context=context or {}, content_hash=h,
                    source=source, split=split)
        session.add(task)
        session.flush()
    return task


def get_or_create_candidate(session: Session, task: Task, content: str, produced_by: str, action: str | None = None) -> Candidate:
    h = text_hash(content)
    cand = session.exec(select(Candidate).where(Candidate.task_id == task.id, Candidate.content_hash == h)).first()
    if cand is None:
        cand = Candidate(task_id=task.id, content=content, action=action, produced_by=produced_by, content_hash=h)
        session.add(cand)
        session.flush()
    return cand


def add_comparison(session: Session, task: Task, a: Candidate, b: Candidate, *, source: str, priority: float = 0.0) -> Comparison | None:
    """The comparison of two different candidates (None when they are the same text)."""
    if a.id == b.id:
        return None
    h = text_hash(f"{task.id}:{a.id}:{b.id}")
    comparison = session.exec(select(Comparison).where(Comparison.pair_hash == h)).first()
    if comparison is None:
        comparison = Comparison(task_id=task.id, candidate_a_id=a.id, candidate_b_id=b.id, pair_hash=h, source=source, priority=priority)
        session.add(comparison)
        session.flush()
    return comparison
