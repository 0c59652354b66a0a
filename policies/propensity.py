"""Exact action probabilities from model scores: softmax with temperature, exploration floor, mask.

For a finite action set the policy's probability of action ``a`` among the allowed (unmasked) actions ``A`` is::

    p(a) = (1 - epsilon) * softmax(logprob / temperature)_A(a) + epsilon / |A|

Masked actions get probability exactly 0 and the rest renormalise over ``A``, so the logged propensity is the
probability the action was actually drawn with after the safety layer's mask. ``temperature=0`` means greedy
(all non-floor mass on the best allowed action, ties to the first in declared order).

Pure functions on plain numbers; no models, no I/O. The probabilities are what off-policy evaluation divides by,
so they are computed in float64 and the sampled action's probability is returned, not recomputed later.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np


class AllActionsMaskedError(ValueError):
    """Every action of the decision was masked: there is nothing left to choose from."""


def action_probabilities(
    logprobs: Mapping[str, float],
    *,
    temperature: float = 1.0,
    epsilon: float = 0.0,
    masked: Iterable[str] = (),
) -> dict[str, float]:
    """Probability of every action (masked ones 0.0), in the order of ``logprobs``; they sum to 1."""
    if temperature < 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number >= 0, got {temperature}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon}")
    actions = list(logprobs)
    masked = set(masked)
    unknown = masked - set(actions)
    if unknown:
        raise ValueError(f"masked actions {sorted(unknown)} are not actions of this decision ({actions})")
    allowed = [a for a in actions if a not in masked]
    if not allowed:
        raise AllActionsMaskedError(f"all {len(actions)} actions are masked")

    scores = np.array([logprobs[a] for a in allowed], dtype=np.float64)
    if not np.all(np.isfinite(scores)):
        raise ValueError(f"action scores must be finite, got {dict(zip(allowed, scores.tolist()))}")
    if temperature == 0:
        greedy = np.zeros_like(scores)
        greedy[int(np.argmax(scores))] = 1.0
        base = greedy
    else:
        z = scores / temperature
        z -= z.max()  # stable softmax
        base = np.exp(z) / np.exp(z).sum()
    mixed = (1.0 - epsilon) * base + epsilon / len(allowed)
    mixed /= mixed.sum()  # remove float drift so logged propensities sum to exactly 1 within 1 ulp
    probs = dict.fromkeys(actions, 0.0)
    probs.update(zip(allowed, mixed.tolist()))
    return probs


def sample_action(probabilities: Mapping[str, float], rng: np.random.Generator) -> tuple[str, float]:
    """Draw one action; return it with its exact probability (the propensity to log)."""
    actions = list(probabilities)
    p = np.array([probabilities[a] for a in actions], dtype=np.float64)
    if np.any(p < 0) or not np.isclose(p.sum(), 1.0, atol=1e-9):
        raise ValueError(f"not a probability vector: {dict(probabilities)}")
    # Inverse-CDF on one uniform draw: unlike rng.choice it never returns a zero-probability (masked) action,
    # even at the float edge where the cumulative sum stops short of 1.
    cdf = np.cumsum(p)
    u = rng.random() * cdf[-1]
    index = int(np.searchsorted(cdf, u, side="right"))
    index = min(index, len(actions) - 1)
    while p[index] == 0.0:  # only reachable through rounding at the very top of the CDF
        index -= 1
    return actions[index], float(p[index])


def rng_for(seed: int, key: str | int | None = None) -> np.random.Generator:
    """A generator determined by ``(seed, key)``: the same decision key always draws the same action.

    Keys are hashed (sha256), so string ids and ints are both fine and the stream does not depend on the order in
    which concurrent requests arrive.
    """
    if key is None:
        return np.random.default_rng(seed)
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def entropy(probabilities: Sequence[float] | Mapping[str, float]) -> float:
    """Shannon entropy in nats (a cheap health signal for a policy: 0 = deterministic)."""
    values = probabilities.values() if isinstance(probabilities, Mapping) else probabilities
    p = np.array([v for v in values if v > 0], dtype=np.float64)
    return float(-(p * np.log(p)).sum())
