"""OpenAI's moderation endpoint (`omni-moderation-latest`) as a moderation provider.

Talks to `/v1/moderations` through the official `openai` SDK so that its retries, timeouts and
error types apply. Every way the call can fail is mapped, in one place (`_map_error`), to a
`ProviderError` with a kind, so the fallback chain can decide what to do; this module never falls
back on its own and never reads the environment (key, base URL and timeout come in through
`OpenAIModerationConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai

from safety.moderation.base import ModerationResult, ProviderError

__all__ = ["OpenAIModeration", "OpenAIModerationConfig"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The languages Arbiter takes omni-moderation to cover (what a verdict's language coverage cites).
# OpenAI describes the model as multilingual without publishing a closed list (its announcement
# reports measurements in 40 languages); these are 40 widely used ones. Narrow or widen the set
# through `OpenAIModerationConfig.languages` after measuring your own traffic.
OPENAI_MODERATION_LANGUAGES = frozenset(
    "en es de fr pt it nl pl ru uk tr ar he fa hi bn ur zh ja ko vi th id ms sv da nb fi cs sk ro hu el bg hr "
    "sr sl lt lv et".split()
)


@dataclass(frozen=True)
class OpenAIModerationConfig:
    """Connection settings; the app fills them from its settings (the key is never read here)."""

    api_key: str
    base_url: str = DEFAULT_BASE_URL
    model: str = "omni-moderation-latest"
    # A decision waits on this call, so the default is short and retries are off: when the API is
    # slow the local providers answer instead of the user waiting.
    timeout_s: float = 3.0
    max_retries: int = 0
    languages: frozenset[str] = OPENAI_MODERATION_LANGUAGES  # ISO 639-1 codes it is trusted with

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ValueError("OpenAIModerationConfig.api_key is empty; leave the provider out instead")
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")


class OpenAIModeration:
    """Moderation provider backed by the OpenAI moderation endpoint.

    Example:
        >>> provider = OpenAIModeration(OpenAIModerationConfig(api_key="sk-..."))
        >>> provider.classify(["I will hurt you"])[0].categories     # doctest: +SKIP
        ('harassment', 'violence')
    """

    name = "openai"

    def __init__(self, config: OpenAIModerationConfig, client: openai.OpenAI | None = None) -> None:
        self.config = config
        self.languages = config.languages
        self._client = client or sdk_client(config)

    def classify(self, texts: Sequence[str]) -> list[ModerationResult]:
        if not texts:
            return []
        try:
            response = self._client.moderations.create(model=self.config.model, input=list(texts))
        except openai.OpenAIError as exc:
            raise _map_error(exc) from exc
        return _parse_results(response, expected=len(texts))

    def close(self) -> None:
        self._client.close()


def _map_error(exc: openai.OpenAIError) -> ProviderError:
    # Order matters: APITimeoutError is a subclass of APIConnectionError.
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError("openai", "timeout", str(exc))
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError("openai", "connection", str(exc))
    if isinstance(exc, openai.APIStatusError):
        return ProviderError("openai", "http", f"status {exc.status_code}: {exc.message}")
    if isinstance(exc, openai.APIResponseValidationError):
        return ProviderError("openai", "malformed", str(exc))
    return ProviderError("openai", "error", str(exc))


def _parse_results(response: Any, expected: int) -> list[ModerationResult]:
    # The SDK does not validate responses strictly, so a malformed body surfaces here as missing
    # attributes or wrong types; all of those become one "malformed" error.
    try:
        results = list(response.results)
        if len(results) != expected:
            raise ValueError(f"{len(results)} results for {expected} inputs")
        parsed = []
        for item in results:
            flags = item.categories.model_dump(by_alias=True)
            raw_scores = item.category_scores.model_dump(by_alias=True)
            # Some categories (e.g. "illicit") may be absent or null on older models.
            scores = {name: float(value) for name, value in raw_scores.items() if value is not None}
            categories = tuple(sorted(name for name, value in flags.items() if value))
            parsed.append(
                ModerationResult(
                    provider="openai", flagged=bool(categories), categories=categories, scores=scores
                )
            )
        return parsed
    except (AttributeError, TypeError, ValueError, KeyError) as exc:
        raise ProviderError("openai", "malformed", f"unexpected moderation response: {exc}") from exc


def sdk_client(config: Any) -> openai.OpenAI:
    """The SDK client for an OpenAI-compatible moderation endpoint (``api_key``, ``base_url``, ``timeout_s``,
    ``max_retries`` from ``config``); shared with the guard-model provider."""
    return openai.OpenAI(
        api_key=config.api_key,
        base_url=config.base_url,
        timeout=config.timeout_s,
        max_retries=config.max_retries,
    )
