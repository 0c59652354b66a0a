"""Exact propensities: softmax with temperature, exploration floor, safety mask, seeded sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policies.propensity import AllActionsMaskedError, action_probabilities, rng_for, sample_action

LOGPROBS = {"billing": -1.0, "technical": -2.0, "account": -3.5, "legal": -0.5}


@pytest.mark.parametrize("temperature", [0.0, 0.3, 1.0, 5.0])
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("masked", [(), ("legal",), ("legal", "billing", "technical")])
def test_probabilities_over_allowed_actions_sum_to_one(temperature, epsilon, masked):
    probs = action_probabilities(LOGPROBS, temperature=temperature, epsilon=epsilon, masked=masked)
    assert list(probs) == list(LOGPROBS)
    assert math.isclose(sum(probs.values()), 1.0, abs_tol=1e-12)
    assert all(probs[a] == 0.0 for a in masked)
    allowed = [a for a in LOGPROBS if a not in masked]
    assert all(probs[a] >= epsilon / len(allowed) - 1e-15 for a in allowed)


def test_known_answer_with_floor_and_mask():
    """Mask 'legal'; softmax over billing/technical/account at T=1 is e^-1, e^-2, e^-3.5 normalised;
    then p = 0.8 * softmax + 0.2 / 3."""
    probs = action_probabilities(LOGPROBS, temperature=1.0, epsilon=0.2, masked={"legal"})
    z = np.exp([-1.0, -2.0, -3.5])
    expected = 0.8 * z / z.sum() + 0.2 / 3
    assert np.allclose([probs["billing"], probs["technical"], probs["account"]], expected, atol=1e-12)
    assert probs["legal"] == 0.0


def test_temperature_zero_is_greedy_plus_floor():
    probs = action_probabilities(LOGPROBS, temperature=0.0, epsilon=0.4)
    assert probs["legal"] == pytest.approx(0.6 + 0.1)
    assert probs["billing"] == pytest.approx(0.1)


def test_bad_arguments_are_refused():
    with pytest.raises(AllActionsMaskedError):
        action_probabilities(LOGPROBS, masked=LOGPROBS.keys())
    with pytest.raises(ValueError, match="not actions"):
        action_probabilities(LOGPROBS, masked={"sales"})
    with pytest.raises(ValueError, match="epsilon"):
        action_probabilities(LOGPROBS, epsilon=1.5)
    with pytest.raises(ValueError, match="temperature"):
        action_probabilities(LOGPROBS, temperature=-1)
    with pytest.raises(ValueError, match="finite"):
        action_probabilities({"a": float("nan"), "b": 0.0})


def test_masked_action_is_never_sampled_and_frequencies_match():
    probs = action_probabilities(LOGPROBS, temperature=1.0, epsilon=0.1, masked={"legal"})
    rng = np.random.default_rng(0)
    draws = [sample_action(probs, rng) for _ in range(20000)]
    assert all(action != "legal" for action, _ in draws)
    assert all(p == probs[action] for action, p in draws)  # the propensity returned is the exact probability
    counts = {a: sum(1 for d, _ in draws if d == a) / len(draws) for a in probs}
    for action, p in probs.items():
        assert abs(counts[action] - p) < 4 * math.sqrt(p * (1 - p) / len(draws)) + 1e-9


def test_keyed_generators_are_reproducible_and_distinct():
    a = rng_for(7, "req-1").random(3)
    assert np.array_equal(a, rng_for(7, "req-1").random(3))
    assert not np.array_equal(a, rng_for(7, "req-2").random(3))
    assert not np.array_equal(a, rng_for(8, "req-1").random(3))
