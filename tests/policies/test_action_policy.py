"""Action policies over a real (tiny, random) language model: scores, exact propensities, masks, batching."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from policies.action_policy import ActionPolicy, TextPolicy
from policies.propensity import AllActionsMaskedError


def test_shared_prefix_scoring_equals_full_sequence_scoring(routing_type, tiny_backend, tickets):
    """The cached, packed scoring must give the same log-likelihoods as one forward pass per sequence."""
    policy = ActionPolicy(routing_type, tiny_backend)
    contexts = [t.context for t in tickets[:6]]
    fast = policy.score_batch(contexts)
    for context, scores in zip(contexts, fast):
        prompt = policy.prompt(context)
        slow = tiny_backend.sequence_logprobs([prompt] * len(policy.actions), list(policy.actions))
        assert np.allclose([scores[a] for a in policy.actions], slow, atol=1e-4)


def test_packed_answers_of_different_lengths_score_as_if_alone(tiny_backend):
    """A row packs a prompt's rest and every answer after it; answers of very different token lengths (and
    prompts of different lengths in one batch) must each score exactly as a separate full forward pass."""
    prompts = [tiny_backend.render([{"role": "user", "content": text}])
               for text in ("Hi", "Please tell me how to reset the password of my account, it expired yesterday.")]
    answers = ["Yes.", "No, I cannot help with that request, but here is a long answer instead.", "ok", "Maybe later"]
    fast = tiny_backend.completion_logprobs(prompts, answers)
    for prompt, row in zip(prompts, fast):
        slow = tiny_backend.sequence_logprobs([prompt] * len(answers), answers)
        assert np.allclose(row, slow, atol=1e-4)
    assert len(set(np.round(fast[0], 3))) == len(answers)  # the answers really differ in score


def test_batch_composition_does_not_change_scores(routing_type, tiny_backend, tickets):
    policy = ActionPolicy(routing_type, tiny_backend)
    together = policy.score_batch([t.context for t in tickets[:5]])
    alone = [policy.score_batch([t.context])[0] for t in tickets[:5]]
    for a, b in zip(together, alone):
        assert np.allclose(list(a.values()), list(b.values()), atol=1e-4)


def test_propensities_sum_to_one_and_match_the_sampled_action(routing_type, tiny_backend, tickets):
    policy = ActionPolicy(routing_type, tiny_backend, temperature=1.0, epsilon=0.1, seed=1)
    for i, decision in enumerate(policy.decide_batch([t.context for t in tickets[:8]], keys=range(8))):
        assert math.isclose(sum(decision.probabilities.values()), 1.0, abs_tol=1e-9)
        assert decision.propensity == decision.probabilities[decision.action] > 0
        assert set(decision.logprobs) == set(routing_type.action_ids)
        assert decision.params["key"] == i


def test_masked_actions_are_never_chosen(routing_type, tiny_backend, tickets):
    policy = ActionPolicy(routing_type, tiny_backend, temperature=5.0, epsilon=0.5, seed=2)
    scores = policy.score_batch([tickets[0].context])[0]
    masked = {"legal", "billing", "technical"}
    chosen = Counter()
    for key in range(400):
        decision = policy.decide_from_scores(scores, masked=masked, key=key)
        assert decision.action not in masked and decision.probabilities["legal"] == 0.0
        assert decision.greedy_action not in masked
        chosen[decision.action] += 1
    assert set(chosen) == {"account", "shipping", "sales"}  # with a 50% floor every allowed action shows up
    with pytest.raises(AllActionsMaskedError):
        policy.decide_from_scores(scores, masked=set(routing_type.action_ids))


def test_same_key_same_decision_regardless_of_batching(routing_type, tiny_backend, tickets):
    policy = ActionPolicy(routing_type, tiny_backend, temperature=3.0, epsilon=0.3, seed=9)
    contexts = [t.context for t in tickets[:6]]
    batch = policy.decide_batch(contexts, keys=[f"r{i}" for i in range(6)])
    single = [policy.decide(c, key=f"r{i}") for i, c in enumerate(contexts)]
    assert [d.action for d in batch] == [d.action for d in single]


def test_invalid_context_is_rejected_before_scoring(routing_type, tiny_backend):
    policy = ActionPolicy(routing_type, tiny_backend)
    with pytest.raises(ValueError, match="context field"):
        policy.decide({"subject": "x"})


def test_policy_kind_must_match_the_decision_type(routing_type, content_type, tiny_backend):
    with pytest.raises(ValueError, match="TextPolicy"):
        ActionPolicy(content_type, tiny_backend)
    with pytest.raises(ValueError, match="ActionPolicy"):
        TextPolicy(routing_type, tiny_backend)
    with pytest.raises(ValueError, match="epsilon"):
        ActionPolicy(routing_type, tiny_backend, epsilon=2.0)


def test_text_policy_drafts_bounded_text(content_type, tiny_backend):
    policy = TextPolicy(content_type, tiny_backend, temperature=0.0, seed=0)
    drafts = policy.draft_batch([{"message": "Where is my parcel?"}, {"message": "Refund please"}])
    assert len(drafts) == 2 and all(isinstance(d.text, str) for d in drafts)
    assert drafts[0].prompt.endswith("<|im_start|>assistant\n")
    again = policy.draft({"message": "Where is my parcel?"})
    assert again.text == drafts[0].text  # greedy decoding is deterministic
