"""Policies that decide: pick one action from a finite set (with its exact propensity), or draft text.

An :class:`ActionPolicy` scores every action of its decision type by the language model's log-likelihood of the
action as the assistant's answer to the prompt built from the context, turns the scores into probabilities
(softmax with temperature, exploration floor ``epsilon``, safety mask; see :mod:`policies.propensity`) and samples
with a seeded generator. The returned :class:`ActionDecision` carries the exact probability the chosen action was
drawn with, which off-policy evaluation later divides by.

Scoring is separate from choosing (``score_batch`` then ``decide_from_scores``) so the API can micro-batch the
expensive part across concurrent requests and apply each request's own mask and seed afterwards; a shadow policy
is the same object deciding on the same request, logged and never served (the app enforces the "never served").

A :class:`TextPolicy` drafts free text for ``kind: text`` decision types.

Not here: the mask itself (the safety layer computes it), traffic splitting (``policies.rollout``), persistence.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.backends.base import PolicyBackend, count_tokens, fit_tokens
from policies.decision_types import DecisionType, PromptTooLong
from policies.propensity import action_probabilities, rng_for, sample_action


def bounded_prompt(decision_type: DecisionType, backend: PolicyBackend, context: Mapping[str, Any]) -> str:
    """The rendered prompt for ``context``, each context field cut to its token budget in the backend's tokens.

    The context is not validated again here: it was where it entered (``DecisionType.validate_context``), and the
    service may change it since (PII redaction turned a 33-character language tag into one longer than the
    schema's 35, and the re-validation answered 500)."""
    fit = lambda text, n: fit_tokens(backend, text, n)  # noqa: E731
    return backend.render(decision_type.messages(context, validate=False, fit=fit))


def check_prompt(decision_type: DecisionType, backend: PolicyBackend, prompt: str) -> int:
    """The token count of ``prompt``; :class:`PromptTooLong` past ``decision_type.limits.max_prompt_tokens``."""
    n = count_tokens(backend, prompt)
    limit = decision_type.limits.max_prompt_tokens
    if n > limit:
        raise PromptTooLong(f"{decision_type.name}: the prompt is {n} tokens after each field was cut to its budget; "
                            f"the limit is {limit} (limits.max_prompt_tokens)")
    return n


@dataclass(frozen=True)
class ActionDecision:
    """One decision, as it should be logged."""

    action: str
    propensity: float  # exact probability ``action`` was drawn with, after the mask
    probabilities: dict[str, float]  # every action, masked ones 0.0
    logprobs: dict[str, float]  # model log-likelihood of each action (before temperature / floor / mask)
    masked: frozenset[str] = frozenset()
    policy_id: str | None = None
    greedy_action: str = ""  # most probable allowed action (what temperature 0 would have chosen)
    params: dict[str, Any] = field(default_factory=dict)  # temperature, epsilon, seed used


class ActionPolicy:
    """A finite-action policy over a :class:`PolicyBackend`.

    Example:
        >>> policy = ActionPolicy(decision_type, backend, temperature=1.0, epsilon=0.1, seed=7)  # doctest: +SKIP
        >>> d = policy.decide(ticket_context, masked={"legal"}, key="req-123")  # doctest: +SKIP
        >>> d.action, d.propensity  # doctest: +SKIP
        ('billing', 0.83)
    """

    def __init__(
        self,
        decision_type: DecisionType,
        backend: PolicyBackend,
        *,
        temperature: float = 1.0,
        epsilon: float = 0.05,
        seed: int = 0,
        policy_id: str | None = None,
    ):
        if decision_type.kind != "action":
            raise ValueError(f"decision type {decision_type.name!r} is free text; use TextPolicy")
        # Validate the knobs once, here, instead of on the first request.
        action_probabilities({"a": 0.0, "b": 0.0}, temperature=temperature, epsilon=epsilon)
        self.decision_type = decision_type
        self.backend = backend
        self.temperature = temperature
        self.epsilon = epsilon
        self.seed = seed
        self.policy_id = policy_id
        self._stream = rng_for(seed)  # used only when a decision comes without a key

    @property
    def actions(self) -> tuple[str, ...]:
        return self.decision_type.action_ids

    def prompt(self, context: Mapping[str, Any]) -> str:
        """The exact prompt string the actions are scored after (also what DPO pairs are built on); each context
        field is cut to its token budget (``decision_type.limits``)."""
        return bounded_prompt(self.decision_type, self.backend, context)

    def checked_prompt(self, context: Mapping[str, Any]) -> str:
        """``prompt``, refused with :class:`PromptTooLong` when it exceeds the decision type's token limit."""
        prompt = self.prompt(context)
        check_prompt(self.decision_type, self.backend, prompt)
        return prompt

    def score_batch(self, contexts: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        """Log-likelihood of every action for each context, in one batched model call."""
        if not contexts:
            return []
        prompts = [self.prompt(c) for c in contexts]
        matrix = self.backend.completion_logprobs(prompts, list(self.actions))
        return [dict(zip(self.actions, row.tolist())) for row in matrix]

    def probabilities(self, logprobs: Mapping[str, float], masked: Iterable[str] = ()) -> dict[str, float]:
        return action_probabilities(logprobs, temperature=self.temperature, epsilon=self.epsilon, masked=masked)

    def decide_from_scores(
        self, logprobs: Mapping[str, float], *, masked: Iterable[str] = (), key: str | int | None = None
    ) -> ActionDecision:
        """Sample one action from already computed scores; ``key`` (e.g. the request id) makes the draw
        reproducible regardless of batching or arrival order."""
        masked = frozenset(masked)
        probs = self.probabilities(logprobs, masked)
        rng = self._stream if key is None else rng_for(self.seed, key)
        action, propensity = sample_action(probs, rng)
        allowed = [a for a in self.actions if a not in masked]
        greedy = max(allowed, key=lambda a: (logprobs[a], -self.actions.index(a)))
        return ActionDecision(
            action=action,
            propensity=propensity,
            probabilities=probs,
            logprobs=dict(logprobs),
            masked=masked,
            policy_id=self.policy_id,
            greedy_action=greedy,
            params={"temperature": self.temperature, "epsilon": self.epsilon, "seed": self.seed, "key": key},
        )

    def decide_batch(
        self,
        contexts: Sequence[Mapping[str, Any]],
        *,
        masked: Sequence[Iterable[str]] | None = None,
        keys: Sequence[str | int | None] | None = None,
    ) -> list[ActionDecision]:
        masked = masked if masked is not None else [()] * len(contexts)
        keys = keys if keys is not None else [None] * len(contexts)
        if not len(masked) == len(keys) == len(contexts):
            raise ValueError(f"{len(contexts)} contexts, {len(masked)} masks and {len(keys)} keys must align")
        for context in contexts:  # score_batch does not validate: the server validated before it redacted
            self.decision_type.validate_context(context)
        scores = self.score_batch(contexts)
        return [self.decide_from_scores(s, masked=m, key=k) for s, m, k in zip(scores, masked, keys)]

    def decide(
        self, context: Mapping[str, Any], *, masked: Iterable[str] = (), key: str | int | None = None
    ) -> ActionDecision:
        return self.decide_batch([context], masked=[masked], keys=[key])[0]


@dataclass(frozen=True)
class TextDraft:
    text: str
    prompt: str
    policy_id: str | None = None


class TextPolicy:
    """A free-text policy (``kind: text``): renders the prompt and samples a draft from the backend."""

    def __init__(
        self,
        decision_type: DecisionType,
        backend: PolicyBackend,
        *,
        temperature: float = 0.7,
        top_p: float = 0.95,
        seed: int = 0,
        policy_id: str | None = None,
    ):
        if decision_type.kind != "text":
            raise ValueError(f"decision type {decision_type.name!r} has a finite action set; use ActionPolicy")
        self.decision_type = decision_type
        self.backend = backend
        self.temperature, self.top_p, self.seed = temperature, top_p, seed
        self.policy_id = policy_id

    def prompt(self, context: Mapping[str, Any]) -> str:
        return bounded_prompt(self.decision_type, self.backend, context)

    def checked_prompt(self, context: Mapping[str, Any]) -> str:
        """``prompt``, refused with :class:`PromptTooLong` when it exceeds the decision type's token limit."""
        prompt = self.prompt(context)
        check_prompt(self.decision_type, self.backend, prompt)
        return prompt

    def draft_batch(self, contexts: Sequence[Mapping[str, Any]]) -> list[TextDraft]:
        prompts = [self.prompt(c) for c in contexts]
        texts = self.backend.generate(
            prompts,
            max_new_tokens=self.decision_type.max_new_tokens,
            max_time=self.decision_type.limits.max_generation_s,
            temperature=self.temperature,
            top_p=self.top_p,
            seed=self.seed,
        )
        return [TextDraft(text=t, prompt=p, policy_id=self.policy_id) for t, p in zip(texts, prompts)]

    def draft(self, context: Mapping[str, Any]) -> TextDraft:
        self.decision_type.validate_context(context)
        return self.draft_batch([context])[0]
