"""Measuring a policy: routing accuracy, win rate against a baseline under a reward model, KL to the reference.

- ``greedy_accuracy``: share of contexts where the policy's most likely action is the right one (the policy's
  accuracy at temperature 0, with no exploration);
- ``win_rate``: share of prompts where a reward model scores the candidate's answer above the baseline's (ties
  count half);
- ``kl_to_reference``: Monte-Carlo estimate of KL(policy || reference) per prompt, from answers sampled from the
  policy: ``mean(log p_policy(y|x) - log p_ref(y|x))``. Answers are scored as complete turns (end-of-turn
  appended), so answers cut off at the length limit are slightly mis-scored; keep the limit generous.

Not here: off-policy evaluation from logs (``policies.ope``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from policies.action_policy import ActionPolicy
from policies.backends.local import TransformersBackend


def score_all(policy: ActionPolicy, contexts: Sequence[Mapping[str, Any]], *, batch_size: int = 16,
              desc: str = "scoring") -> np.ndarray:
    """Log-likelihood of every action for every context, ``(n, K)`` in ``policy.actions`` order, with progress."""
    rows = []
    for start in tqdm(range(0, len(contexts), batch_size), desc=desc, unit="batch"):
        for scores in policy.score_batch(contexts[start : start + batch_size]):
            rows.append([scores[a] for a in policy.actions])
    return np.array(rows, dtype=np.float64).reshape(len(contexts), len(policy.actions))


def policy_probabilities(policy: ActionPolicy, contexts: Sequence[Mapping[str, Any]],
                         masks: Sequence[Sequence[str]] | None = None, *, batch_size: int = 16) -> list[dict[str, float]]:
    """The probabilities ``policy`` would give every action in each context under that context's safety mask:
    the target probabilities off-policy evaluation needs."""
    masks = masks if masks is not None else [()] * len(contexts)
    if len(masks) != len(contexts):
        raise ValueError(f"{len(contexts)} contexts but {len(masks)} masks")
    scores = score_all(policy, contexts, batch_size=batch_size, desc="target policy")
    return [policy.probabilities(dict(zip(policy.actions, row)), mask) for row, mask in zip(scores, masks)]


def greedy_accuracy(scores: np.ndarray, actions: Sequence[str], labels: Sequence[str]) -> float:
    """Share of rows whose highest-scoring action equals the label."""
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} score rows but {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("no contexts to evaluate")
    picked = np.asarray(actions)[np.argmax(scores, axis=1)]
    return float(np.mean(picked == np.asarray(labels)))


def win_rate(prompts: Sequence[str], candidate: Sequence[str], baseline: Sequence[str],
             score: Callable[[list[str], list[str]], Sequence[float]]) -> dict[str, float]:
    """Win rate of ``candidate`` answers over ``baseline`` answers, judged by ``score(prompts, responses)``."""
    if not len(prompts) == len(candidate) == len(baseline):
        raise ValueError("prompts, candidate and baseline answers must align")
    a = np.asarray(score(list(prompts), list(candidate)), dtype=np.float64)
    b = np.asarray(score(list(prompts), list(baseline)), dtype=np.float64)
    wins = np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))
    return {"win_rate": float(wins.mean()), "mean_reward_candidate": float(a.mean()),
            "mean_reward_baseline": float(b.mean()), "n": len(prompts)}


def kl_to_reference(policy: TransformersBackend, reference: TransformersBackend, prompts: Sequence[str], *,
                    samples_per_prompt: int = 2, max_new_tokens: int = 64, temperature: float = 1.0,
                    seed: int = 0) -> dict[str, float]:
    """Monte-Carlo KL(policy || reference) in nats per prompt, with its standard error."""
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    answers = policy.generate(repeated, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    lp_policy = policy.sequence_logprobs(repeated, answers)
    lp_ref = reference.sequence_logprobs(repeated, answers)
    diff = lp_policy - lp_ref
    return {"kl": float(diff.mean()), "kl_std_error": float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1
            else float("nan"), "samples": len(diff)}
