"""Outcome labels: a well-rewarded routing decision is preferred to the other allowed teams; re-running adds none."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from app.db import session_scope
from app.models import Candidate, Comparison, Decision, Label, Outcome
from app.services.labels.outcome_labels import labels_from_outcomes
from policies.decision_types import BUILTIN_DIR, load_decision_type

TICKET = {"subject": "Parcel lost", "body": "My parcel never arrived.", "customer": {"tier": "standard"}}


def _decision(s: Session, action: str, reward: float, probs: dict[str, float]) -> None:
    d = Decision(decision_type="ticket-routing", context=TICKET, action=action, proposed_action=action,
                 propensity=probs[action], action_probs=probs)
    s.add(d)
    s.flush()
    s.add(Outcome(decision_id=d.id, reward=reward))


@pytest.mark.parametrize("negatives, expected", [(1, 1), (3, 3), (10, 4)])
def test_rewarded_decision_beats_the_allowed_alternatives(engine, negatives, expected):
    routing = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")
    # "legal" was masked (probability 0): it is never offered as the rejected side.
    probs = {"billing": 0.1, "technical": 0.1, "account": 0.1, "shipping": 0.6, "sales": 0.1, "legal": 0.0}
    with session_scope(engine) as s:
        _decision(s, "shipping", 0.93, probs)
        _decision(s, "billing", 0.05, probs)  # a low reward says only what was wrong: no pair
    with session_scope(engine) as s:
        assert labels_from_outcomes(s, routing, negatives=negatives) == expected
    with session_scope(engine) as s:
        assert labels_from_outcomes(s, routing, negatives=negatives) == 0
    with Session(engine) as s:
        labels = s.exec(select(Label).where(Label.source == "outcome")).all()
        assert len(labels) == expected and all(label.choice == "a" for label in labels)
        rejected = {s.get(Candidate, s.get(Comparison, label.comparison_id).candidate_b_id).action for label in labels}
        assert "legal" not in rejected and "shipping" not in rejected and len(rejected) == expected


def test_negatives_must_be_positive(engine):
    routing = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")
    with session_scope(engine) as s, pytest.raises(ValueError, match="negatives"):
        labels_from_outcomes(s, routing, negatives=0)
