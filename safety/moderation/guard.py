"""A guard LLM (Llama Guard 3, Qwen3Guard, Granite Guardian) behind an OpenAI-compatible chat
endpoint, as a moderation provider.

Production runs the guard model on vLLM (`vllm serve meta-llama/Llama-Guard-3-8B`); this provider
talks to its `/v1/chat/completions` through the official `openai` SDK, one request per text (per
text and risk for Granite Guardian), concurrently, so that vLLM batches them. What each family is
sent and how its answer reads is `safety.moderation.guard_formats`.

Every failure maps to a `ProviderError` in one place (`_map_error`): a timeout, a connection
error, an HTTP error status, or an answer that does not follow the family's format ("malformed").
Every text goes as the user's turn, generated outputs too: the provider contract carries texts,
not conversations, so the guard judges a reply as it would a prompt (Llama Guard and Qwen3Guard
judge an assistant turn best with the user's turn before it, which this provider cannot send).

One failed request fails the whole batch, so the fallback chain (`safety.moderation.chain`) hands
the batch to the next provider and the report says why; this module never falls back on its own,
never reads the environment, and sends only the text it was given (the layer decides what that is).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import openai

from safety.moderation.base import ModerationResult, ProviderError
from safety.moderation.guard_formats import (
    FAMILIES,
    FAMILY_LANGUAGES,
    GRANITE_DEFAULT_RISKS,
    GRANITE_RISKS,
    GuardAnswer,
    GuardOutputError,
    category_scores,
    parse_granite_guardian,
    parse_llama_guard,
    parse_qwen3guard,
)
from safety.moderation.openai_api import sdk_client

__all__ = ["GuardModeration", "GuardModerationConfig"]


@dataclass(frozen=True)
class GuardModerationConfig:
    """Connection settings and reading of the guard model; the app fills them from its settings.

    `family` picks the prompt convention and output parser; `model` is the name the server serves
    the model under. `granite_risks` are the Granite Guardian risks asked (one request each).
    `controversial_flags` reads a Qwen3Guard "Controversial" as unsafe (Qwen's strict mode).
    """

    base_url: str
    model: str
    family: str = "llama-guard"
    api_key: str = "EMPTY"  # vLLM accepts any key unless started with --api-key
    # A decision waits on this call: short, no retries; when the guard is slow the next provider answers.
    timeout_s: float = 5.0
    max_retries: int = 0
    max_concurrency: int = 8
    max_tokens: int = 32  # enough for "unsafe\nS1,S2,S10" or "Safety: ...\nCategories: ..."
    top_logprobs: int = 5
    granite_risks: tuple[str, ...] = GRANITE_DEFAULT_RISKS
    controversial_flags: bool = True
    name: str = field(default="")  # the provider's name in reports; default: the family

    def __post_init__(self) -> None:
        if not self.base_url:
            raise ValueError("GuardModerationConfig.base_url is empty; leave the provider out instead")
        if not self.model:
            raise ValueError("GuardModerationConfig.model is empty: name the model the server serves")
        if self.family not in FAMILIES:
            raise ValueError(f"unknown guard family {self.family!r}; expected one of {', '.join(FAMILIES)}")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.max_retries < 0 or self.max_concurrency < 1:
            raise ValueError("max_retries must be >= 0 and max_concurrency >= 1")
        unknown = [r for r in self.granite_risks if r not in GRANITE_RISKS]
        if unknown or not self.granite_risks:
            raise ValueError(f"unknown Granite Guardian risks {unknown}; known: {', '.join(GRANITE_RISKS)}")


class GuardModeration:
    """Moderation provider backed by a guard model on an OpenAI-compatible chat endpoint.

    Example:
        >>> config = GuardModerationConfig("http://127.0.0.1:8001/v1", "meta-llama/Llama-Guard-3-8B")
        >>> GuardModeration(config).classify(["I will hurt you"])[0].categories   # doctest: +SKIP
        ('illicit', 'illicit/violent', 'violence')
    """

    def __init__(self, config: GuardModerationConfig, client: openai.OpenAI | None = None) -> None:
        self.config = config
        self.name = config.name or config.family
        self.languages = FAMILY_LANGUAGES[config.family]  # what the language coverage may credit it with
        self._client = client or sdk_client(config)

    def classify(self, texts: Sequence[str]) -> list[ModerationResult]:
        if not texts:
            return []
        keys = self._keys()
        jobs = [(i, key) for i in range(len(texts)) for key in keys]
        workers = min(self.config.max_concurrency, len(jobs))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"{self.name}-")
        futures = [pool.submit(self._ask, texts[i], key) for i, key in jobs]
        try:
            answers = [future.result() for future in futures]
        finally:
            # On the first failure the batch goes to the next provider at once: requests not yet
            # sent are cancelled, and those in flight end on their own timeout without being awaited.
            pool.shutdown(wait=False, cancel_futures=True)
        results = []
        for i in range(len(texts)):
            mine = {key: answers[i * len(keys) + k] for k, key in enumerate(keys)}
            categories = tuple(sorted({c for a in mine.values() for c in a.categories}))
            results.append(
                ModerationResult(
                    provider=self.name,
                    flagged=bool(categories),
                    categories=categories,
                    scores=category_scores(mine, self.config.family),
                )
            )
        return results

    def close(self) -> None:
        self._client.close()

    # ------------------------------------------------------------ internals

    def _keys(self) -> tuple[str, ...]:
        return self.config.granite_risks if self.config.family == "granite-guardian" else ("",)

    def _ask(self, text: str, risk: str) -> GuardAnswer:
        extra: dict[str, Any] = {}
        if self.config.family == "granite-guardian":
            extra["chat_template_kwargs"] = {"guardian_config": {"risk_name": risk}}
        try:
            response = self._client.chat.completions.create(
                model=self.config.model,
                messages=[{"role": "user", "content": text}],
                temperature=0,
                max_tokens=self.config.max_tokens,
                logprobs=True,
                top_logprobs=self.config.top_logprobs,
                extra_body=extra or None,
            )
        except openai.OpenAIError as exc:
            raise _map_error(self.name, exc) from exc
        try:
            choice = response.choices[0]
            content = choice.message.content
            if not isinstance(content, str):
                raise GuardOutputError(f"no text in the answer (finish_reason={choice.finish_reason!r})")
            logprobs = choice.logprobs.content if choice.logprobs is not None else None
            return self._parse(content, logprobs, risk)
        except (GuardOutputError, AttributeError, IndexError, TypeError, KeyError) as exc:
            raise ProviderError(self.name, "malformed", f"unexpected guard answer: {exc}") from exc

    def _parse(self, content: str, logprobs: Any, risk: str) -> GuardAnswer:
        family = self.config.family
        if family == "llama-guard":
            return parse_llama_guard(content, logprobs)
        if family == "qwen3guard":
            return parse_qwen3guard(content, logprobs, self.config.controversial_flags)
        return parse_granite_guardian(content, risk, logprobs)


def _map_error(name: str, exc: openai.OpenAIError) -> ProviderError:
    # Order matters: APITimeoutError is a subclass of APIConnectionError.
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(name, "timeout", str(exc))
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(name, "connection", str(exc))
    if isinstance(exc, openai.APIStatusError):
        return ProviderError(name, "http", f"status {exc.status_code}: {exc.message}")
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError(name, "malformed", str(exc))
    return ProviderError(name, "error", str(exc))
