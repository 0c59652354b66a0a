"""The transformers backend's prefix cache and length groups: faster paths that must score exactly like the slow one."""

from __future__ import annotations

import copy
import itertools
import random

import numpy as np
import pytest
import torch

from policies.action_policy import ActionPolicy
from policies.backends.local import TransformersBackend
from policies.backends.packed_scoring import length_groups
from policies.backends.prefix_cache import MIN_CACHED_PREFIX, PrefixCache, common_prefix


@pytest.fixture
def backends(tiny_causal_lm):
    """The same tiny model behind a backend with the prefix cache and one without."""
    model, tokenizer = tiny_causal_lm
    return (TransformersBackend(model, tokenizer, name="cached", batch_size=8),
            TransformersBackend(model, tokenizer, name="plain", batch_size=8, prefix_cache_size=0))


def _scores(policy, contexts, size):
    out = []
    for i in range(0, len(contexts), size):
        out += policy.score_batch(contexts[i : i + size])
    return np.array([[s[a] for a in policy.actions] for s in out])


def test_cached_prefix_scores_equal_uncached_scores(routing_type, backends, tickets):
    cached, plain = backends
    contexts = [t.context for t in tickets[:10]]
    fast, slow = ActionPolicy(routing_type, cached), ActionPolicy(routing_type, plain)
    for size in (1, 3):  # requests alone, then small batches, all after the cache holds the system message
        assert np.allclose(_scores(fast, contexts, size), _scores(slow, contexts, size), atol=1e-4)
    assert cached.prefix_cache.stats.stored >= 1 and cached.prefix_cache.stats.hits >= 8
    assert len(plain.prefix_cache) == 0 and plain.prefix_cache.stats.hits == 0


def test_the_recurring_system_message_is_stored_once_and_reused(routing_type, backends, tickets):
    cached, _ = backends
    policy = ActionPolicy(routing_type, cached)
    ids = [cached.tokenizer(text=policy.prompt(t.context))["input_ids"] for t in tickets[:3]]
    policy.score_batch([tickets[0].context])
    assert len(cached.prefix_cache) == 0  # one prompt alone says nothing about what recurs
    policy.score_batch([tickets[1].context])
    [(key, _)] = cached.prefix_cache._entries.items()
    assert len(key) == common_prefix(ids[0], ids[1]) >= MIN_CACHED_PREFIX
    assert cached.tokenizer.decode(list(key)).startswith(cached.tokenizer.decode(ids[2][: len(key)]))
    hits = cached.prefix_cache.stats.hits
    policy.score_batch([tickets[2].context])
    assert cached.prefix_cache.stats.hits == hits + 1 and cached.prefix_cache.stats.stored == 1


def test_stored_states_are_never_modified_by_later_calls(routing_type, backends, tickets):
    cached, _ = backends
    policy = ActionPolicy(routing_type, cached)
    policy.score_batch([tickets[0].context])
    policy.score_batch([tickets[1].context])
    [(_, kv)] = cached.prefix_cache._entries.items()
    before = [(k.clone(), v.clone()) for k, v in kv]
    for size in (1, 4):
        _scores(policy, [t.context for t in tickets[2:10]], size)
    assert all(torch.equal(k, k0) and torch.equal(v, v0) for (k, v), (k0, v0) in zip(kv, before))


def test_alternating_system_messages_are_both_cached_and_exact(backends):
    """Two decision types taking turns: each prompt's nearest recent prompt is two calls back, not the last one."""
    cached, plain = backends
    systems = ["You route support tickets to exactly one team. " * 3, "You write short friendly replies to customers. " * 3]
    prompts = [cached.render([{"role": "system", "content": systems[i % 2]}, {"role": "user", "content": f"Case {i}: help"}])
               for i in range(8)]
    answers = ["billing", "No."]
    fast = np.vstack([cached.completion_logprobs([p], answers) for p in prompts])
    slow = np.vstack([plain.completion_logprobs([p], answers) for p in prompts])
    assert np.allclose(fast, slow, atol=1e-4)
    assert len(cached.prefix_cache) == 2 and cached.prefix_cache.stats.hits >= 4


def test_prefix_cache_keeps_the_longest_match_and_evicts_the_least_recently_used():
    cache = PrefixCache(capacity=2)
    kv = [(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))]
    cache.store([1, 2], kv)
    cache.store([1, 2, 3, 4], kv)
    assert cache.longest([1, 2, 3, 4, 5])[0] == 4 and cache.longest([1, 2, 9])[0] == 2 and cache.longest([7])[0] == 0
    cache.longest([1, 2])  # [1, 2] is now the most recently used
    cache.store([5, 6], kv)
    assert set(cache._entries) == {(1, 2), (5, 6)} and cache.stats.evicted == 1
    assert cache.recurring([1, 2, 3]) == 0 and cache.recurring([1, 2, 7]) == 2
    with pytest.raises(ValueError):
        PrefixCache(-1)


def _partition_cost(groups, lengths, pass_cost):
    return sum(len(g) * max(lengths[i] for i in g) + pass_cost for g in groups)


def _partitions(items):
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in _partitions(rest):
        yield [[first], *part]
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1 :]]


@pytest.mark.parametrize("seed", range(6))
def test_length_groups_are_an_optimal_partition(seed):
    rng = random.Random(seed)
    lengths = [rng.randint(1, 80) for _ in range(rng.randint(1, 7))]
    pass_cost = rng.choice([0, 10, 48, 500])
    groups = length_groups(lengths, pass_cost)
    assert sorted(itertools.chain.from_iterable(groups)) == list(range(len(lengths)))
    best = min(_partition_cost(p, lengths, pass_cost) for p in _partitions(list(range(len(lengths)))))
    assert _partition_cost(groups, lengths, pass_cost) == best
    if pass_cost == 500:
        assert len(groups) == 1  # a pass costs more than any padding here


def test_prompts_of_very_different_lengths_are_scored_in_groups_exactly(backends):
    cached, _ = backends
    texts = ["Hi"] * 3 + ["Please tell me how to reset the password of my account, it expired yesterday and " * 4] * 3
    prompts = [cached.render([{"role": "user", "content": f"{t} ({i})"}]) for i, t in enumerate(texts)]
    lengths = [len(cached.tokenizer(text=p)["input_ids"]) for p in prompts]
    assert len(length_groups([n - min(lengths) for n in lengths], 48)) == 2
    answers = ["Yes.", "No, not today.", "ok"]
    fast = cached.completion_logprobs(prompts, answers)
    for prompt, row in zip(prompts, fast):
        assert np.allclose(row, cached.sequence_logprobs([prompt] * len(answers), answers), atol=1e-4)


def _count_passes(backend):
    """Count forward passes of the backend's decoder (a hook on the body every pass goes through)."""
    calls = []
    backend._body().register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs["input_ids"].shape),
                                          with_kwargs=True)
    return calls


def test_a_request_alone_after_the_system_message_is_cached_runs_one_forward_pass(routing_type, tiny_causal_lm, tickets):
    """Once the system message's states are stored, a request costs one pass: its prompt's rest and every answer."""
    model, tokenizer = tiny_causal_lm
    backend = TransformersBackend(copy.deepcopy(model), tokenizer, batch_size=8)
    policy = ActionPolicy(routing_type, backend)
    policy.score_batch([tickets[0].context])
    policy.score_batch([tickets[1].context])  # stores the system message
    passes = _count_passes(backend)
    for t in tickets[2:6]:
        policy.score_batch([t.context])
    assert len(passes) == 4 and all(rows == 1 for rows, _ in passes)
    passes.clear()
    policy.score_batch([t.context for t in tickets[6:14]])
    assert 1 <= len(passes) <= 3 and sum(rows for rows, _ in passes) == 8  # one pass per length group


def test_without_the_cache_a_shared_prefix_runs_once_only_where_it_pays(routing_type, tiny_causal_lm, tickets):
    """Without stored states, the system message runs as a pass of its own for a batch (once, not once per row),
    never for a request alone (an extra pass would cost more than it saves); scores stay exact either way."""
    model, tokenizer = tiny_causal_lm
    backend = TransformersBackend(copy.deepcopy(model), tokenizer, batch_size=8, prefix_cache_size=0)
    policy = ActionPolicy(routing_type, backend)
    passes = _count_passes(backend)
    alone = policy.score_batch([tickets[0].context])
    assert len(passes) == 1
    passes.clear()
    together = policy.score_batch([t.context for t in tickets[:8]])
    assert passes[0][0] == 1 and sum(rows for rows, _ in passes[1:]) == 8  # the shared prefix, then the rows
    prompt_rows = len(tokenizer(text=policy.prompt(tickets[0].context))["input_ids"])
    assert passes[1][1] < prompt_rows  # the rows no longer carry the system message
    assert np.allclose(list(alone[0].values()), list(together[0].values()), atol=1e-4)


def test_answers_of_one_token_and_empty_answers_score_exactly(tiny_backend):
    """An answer whose only token is the end of turn runs no token of its own: the prompt's last state scores it."""
    prompts = [tiny_backend.render([{"role": "user", "content": text}]) for text in ("Is the parcel late?", "Hi")]
    answers = ["", "a", "Yes, it is two days late."]
    fast = tiny_backend.completion_logprobs(prompts, answers)
    for p, row in zip(prompts, fast):
        assert np.allclose(row, tiny_backend.sequence_logprobs([p] * len(answers), answers), atol=1e-4)
