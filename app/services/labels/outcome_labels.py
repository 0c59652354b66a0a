"""Preference labels from observed outcomes of finite-action decisions.

A logged decision whose outcome reward reached ``good`` says its action was right for that context;
with one correct action per context (ticket routing), it is preferred to any other action. Each such
decision becomes comparisons (logged action vs. ``negatives`` other allowed actions, drawn without
replacement with a seeded RNG; every other action when ``negatives`` is at least their number) with
labels of source ``outcome``. Decisions with low rewards say only what was wrong, and give no
pair here. Re-running adds nothing: comparisons and labels are keyed by content.
"""

from __future__ import annotations

import random

from sqlmodel import Session, col, select

from app.audit import append_audit
from app.models import Decision, Label, Outcome
from app.services.labels.comparisons import add_comparison, get_or_create_candidate, get_or_create_task
from policies.decision_types import DecisionType

__all__ = ["action_text", "labels_from_outcomes"]


def action_text(dt: DecisionType, action: str) -> str:
    """How an action reads as a response: its id and description (gives a text reward model something to read)."""
    spec = next(a for a in dt.actions if a.id == action)
    return f"{spec.id}: {spec.description}" if spec.description else spec.id


def labels_from_outcomes(session: Session, dt: DecisionType, *, good: float = 0.5, negatives: int = 1, seed: int = 0,
                         actor: str = "system") -> int:
    """Add outcome labels for every rewarded decision of ``dt``; returns how many labels were added."""
    if negatives < 1:
        raise ValueError(f"negatives must be >= 1, got {negatives}")
    rows = session.exec(select(Decision, Outcome).join(Outcome, Outcome.decision_id == Decision.id)
                        .where(Decision.decision_type == dt.name, col(Outcome.reward).is_not(None),
                               col(Decision.action).is_not(None)).order_by(Decision.created_at)).all()
    rng = random.Random(seed)
    added = 0
    for decision, outcome in rows:
        if outcome.reward < good:
            continue
        others = [a for a in dt.action_ids if a != decision.action and decision.action_probs.get(a, 0.0) > 0.0]
        if not others:
            continue
        prompt = [{"role": "user", "content": dt.user_text(decision.context)}]
        task = get_or_create_task(session, prompt, kind="decision", decision_type=dt.name, context=decision.context, source="outcomes")
        a = get_or_create_candidate(session, task, action_text(dt, decision.action), f"decision:{decision.id}", decision.action)
        for rejected in rng.sample(others, min(negatives, len(others))):
            b = get_or_create_candidate(session, task, action_text(dt, rejected), "outcome-negative", rejected)
            comparison = add_comparison(session, task, a, b, source="outcomes")
            if comparison is None:
                continue
            exists = session.exec(select(Label).where(Label.comparison_id == comparison.id, Label.source == "outcome")).first()
            if exists is None:
                session.add(Label(comparison_id=comparison.id, choice="a", confidence=1.0, source="outcome",
                                  producer=f"outcome:{decision.id}", rationale=f"reward {outcome.reward:.2f} for {decision.action}",
                                  details={"decision_id": decision.id, "reward": outcome.reward}))
                added += 1
    session.flush()
    if added:
        append_audit(session, actor, "labels.ingested", "decision_type", dt.name, {"source": "outcome", "added": added})
    return added
