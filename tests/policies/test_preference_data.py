"""Preference pairs from outcomes and from a reward model's action values."""

from __future__ import annotations

import numpy as np
import pytest

from policies.preference_data import DPOExample, LoggedOutcome, pairs_from_action_values, pairs_from_outcomes

ACTIONS = ("billing", "technical", "legal")


def prompt_for(context):
    return f"P:{context['id']}"


def test_outcome_pairs_use_only_observed_losers_by_default():
    logs = [
        LoggedOutcome("t1", {"id": 1}, "billing", 0.9),
        LoggedOutcome("t1", {"id": 1}, "legal", 0.1),
        LoggedOutcome("t2", {"id": 2}, "technical", 0.2),  # nothing rewarded: no pair
        LoggedOutcome("t3", {"id": 3}, "legal", 0.95),  # rewarded, but no observed loser
    ]
    pairs = pairs_from_outcomes(logs, prompt_for, ACTIONS)
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("P:1", "billing", "legal")]
    single = pairs_from_outcomes(logs, prompt_for, ACTIONS, assume_single_correct=True)
    assert {(p.prompt, p.chosen, p.rejected) for p in single} == {
        ("P:1", "billing", "technical"), ("P:1", "billing", "legal"),
        ("P:3", "legal", "billing"), ("P:3", "legal", "technical")}
    with pytest.raises(ValueError, match="not one of"):
        pairs_from_outcomes([LoggedOutcome("x", {"id": 0}, "sales", 1.0)], prompt_for, ACTIONS)


def test_action_value_pairs_pick_the_reference_policys_favourite_mistake():
    values = np.array([[0.9, 0.1, 0.2], [0.3, 0.35, 0.32], [0.1, 0.1, 0.8]])
    ref = np.array([[-5.0, -1.0, -3.0], [-1.0, -2.0, -3.0], [-2.0, -9.0, -4.0]])
    contexts = [{"id": i} for i in range(3)]
    pairs = pairs_from_action_values(contexts, values, prompt_for, ACTIONS, margin=0.2, reference_logprobs=ref)
    # context 1 has no action clearly worse than its best: skipped
    assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("P:0", "billing", "technical"),
                                                                  ("P:2", "legal", "billing")]
    assert pairs[0].ref_chosen_logp == -5.0 and pairs[0].ref_rejected_logp == -1.0
    assert pairs[0].as_row()["ref_rejected_logps"] == -1.0
    sampled = pairs_from_action_values(contexts, values, prompt_for, ACTIONS, negatives=2, reference_logprobs=ref,
                                       negative_temperature=1.0, seed=1)
    assert sorted((p.prompt, p.rejected) for p in sampled) == [("P:0", "legal"), ("P:0", "technical"),
                                                               ("P:2", "billing"), ("P:2", "technical")]
    confident = pairs_from_action_values(contexts, values, prompt_for, ACTIONS, min_confidence=0.85)
    assert [p.prompt for p in confident] == ["P:0"]


def test_example_validation():
    with pytest.raises(ValueError, match="same answer"):
        DPOExample("p", "a", "a")
    with pytest.raises(ValueError, match="both"):
        DPOExample("p", "a", "b", ref_chosen_logp=-1.0)
    with pytest.raises(ValueError, match=r"values must be \(1, 3\)"):
        pairs_from_action_values([{"id": 0}], np.zeros((2, 3)), prompt_for, ACTIONS)
