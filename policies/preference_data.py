"""Preference pairs for policy training, from labels, from outcomes, or from a reward model.

Three sources, one shape (:class:`DPOExample`: rendered prompt, chosen answer, rejected answer):

- labels: ``examples_from_preference_pairs`` turns ``reward_models.pairs.PreferencePair`` (human / judge labels,
  HH-RLHF files) into examples with the policy's chat format;
- outcomes of a finite-action policy: ``pairs_from_outcomes``: for a context where an action earned a reward, the
  chosen answer is that action and the rejected ones are actions that did not (observed with a low reward, or,
  when ``assume_single_correct`` holds as it does for routing, every other action);
- a reward model over (context, action): ``pairs_from_action_values``: chosen = the best action by the model's
  predicted value, rejected = the actions it ranks clearly lower, preferring the ones the current policy likes most
  (the mistakes worth correcting).

Not here: training, and fitting reward models.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DPOExample:
    prompt: str  # rendered with the policy's chat format, ends where the answer starts
    chosen: str
    rejected: str
    # log p_ref(answer + EOS | prompt) when already known (e.g. from the scoring pass of the exploring base
    # policy); DPO then skips its own reference forward pass, about a third of its compute.
    ref_chosen_logp: float | None = None
    ref_rejected_logp: float | None = None

    def __post_init__(self):
        if not self.prompt:
            raise ValueError("empty prompt")
        if self.chosen == self.rejected:
            raise ValueError(f"chosen and rejected are the same answer: {self.chosen!r}")
        if (self.ref_chosen_logp is None) != (self.ref_rejected_logp is None):
            raise ValueError("give both reference log-probabilities or neither")

    @property
    def has_reference(self) -> bool:
        return self.ref_chosen_logp is not None

    def as_row(self) -> dict[str, str | float]:
        row: dict[str, str | float] = {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}
        if self.has_reference:
            row["ref_chosen_logps"] = float(self.ref_chosen_logp)
            row["ref_rejected_logps"] = float(self.ref_rejected_logp)
        return row


@dataclass(frozen=True)
class LoggedOutcome:
    """One logged decision with its outcome; ``key`` groups decisions made on the same context."""

    key: Hashable
    context: Mapping[str, Any]
    action: str
    reward: float


def examples_from_preference_pairs(pairs: Sequence[Any], render: Callable[[list[dict[str, str]]], str]) -> list[DPOExample]:
    """Labelled pairs (objects with ``prompt`` messages, ``chosen``, ``rejected``) rendered for a policy."""
    out = []
    for pair in pairs:
        messages = [{"role": m.role, "content": m.content} for m in pair.prompt]
        if pair.chosen != pair.rejected:
            out.append(DPOExample(render(messages), pair.chosen, pair.rejected))
    return out


def pairs_from_outcomes(
    outcomes: Sequence[LoggedOutcome],
    prompt_for: Callable[[Mapping[str, Any]], str],
    action_ids: Sequence[str],
    *,
    good: float = 0.5,
    assume_single_correct: bool = False,
) -> list[DPOExample]:
    """Pairs (rewarded action > unrewarded action) per context.

    An action counts as rewarded when its mean observed reward is ``>= good``. Without
    ``assume_single_correct`` only actions actually observed with a low reward become rejected answers.
    """
    by_key: dict[Hashable, list[LoggedOutcome]] = defaultdict(list)
    for o in outcomes:
        if o.action not in action_ids:
            raise ValueError(f"logged action {o.action!r} is not one of {list(action_ids)}")
        by_key[o.key].append(o)
    examples = []
    for group in by_key.values():
        rewards: dict[str, list[float]] = defaultdict(list)
        for o in group:
            rewards[o.action].append(o.reward)
        mean = {a: float(np.mean(r)) for a, r in rewards.items()}
        winners = [a for a in action_ids if mean.get(a, -np.inf) >= good]
        if not winners:
            continue
        losers = [a for a in action_ids if a in mean and mean[a] < good]
        if assume_single_correct:
            losers = [a for a in action_ids if a not in winners]
        prompt = prompt_for(group[0].context)
        examples.extend(DPOExample(prompt, w, lo) for w in winners for lo in losers)
    return examples


def pairs_from_action_values(
    contexts: Sequence[Mapping[str, Any]],
    values: np.ndarray,
    prompt_for: Callable[[Mapping[str, Any]], str],
    action_ids: Sequence[str],
    *,
    margin: float = 0.2,
    negatives: int = 1,
    reference_logprobs: np.ndarray | None = None,
    negative_temperature: float | None = None,
    min_confidence: float | None = None,
    seed: int = 0,
) -> list[DPOExample]:
    """Pairs from a reward model's predicted value of every action in every context (``values``: ``(n, K)``).

    For each context the chosen answer is the highest-value action; up to ``negatives`` rejected answers are
    taken among the actions whose value is at least ``margin`` lower. With ``reference_logprobs`` (the starting
    policy's log-likelihood of every action, ``(n, K)``) the negatives are the ones that policy prefers, the
    mistakes worth correcting: the most likely first, or, with ``negative_temperature``, sampled in proportion to
    ``softmax(logprob / negative_temperature)`` so that less obvious mistakes are also seen; the reference
    log-probabilities are attached to the examples. ``min_confidence`` skips contexts whose best value is below
    it (the reward model is unsure which action is right).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (len(contexts), len(action_ids)):
        raise ValueError(f"values must be ({len(contexts)}, {len(action_ids)}), got {values.shape}")
    if reference_logprobs is not None and np.shape(reference_logprobs) != values.shape:
        raise ValueError(f"reference_logprobs must have shape {values.shape}")
    if negatives < 1:
        raise ValueError("negatives must be >= 1")
    if negative_temperature is not None and negative_temperature <= 0:
        raise ValueError("negative_temperature must be > 0")
    rng = np.random.default_rng(seed)
    examples = []
    for i, context in enumerate(contexts):
        best = int(np.argmax(values[i]))
        if min_confidence is not None and values[i, best] < min_confidence:
            continue
        candidates = np.array([a for a in range(len(action_ids)) if values[i, a] <= values[i, best] - margin])
        if candidates.size == 0:
            continue
        picked = _pick_negatives(candidates, values[i], reference_logprobs, i, negatives, negative_temperature, rng)
        prompt = prompt_for(context)
        for a in picked:
            ref = {}
            if reference_logprobs is not None:
                ref = {"ref_chosen_logp": float(reference_logprobs[i, best]),
                       "ref_rejected_logp": float(reference_logprobs[i, a])}
            examples.append(DPOExample(prompt, action_ids[best], action_ids[a], **ref))
    return examples


def _pick_negatives(candidates, row_values, reference_logprobs, i, k, temperature, rng) -> list[int]:
    k = min(k, candidates.size)
    if reference_logprobs is None:
        return [int(a) for a in candidates[np.argsort(-row_values[candidates], kind="stable")][:k]]
    scores = np.asarray(reference_logprobs[i], dtype=np.float64)[candidates]
    if temperature is None:
        return [int(a) for a in candidates[np.argsort(-scores, kind="stable")][:k]]
    p = np.exp((scores - scores.max()) / temperature)
    return [int(a) for a in rng.choice(candidates, size=k, replace=False, p=p / p.sum())]
