"""What the two paid-API judges (OpenAI, Anthropic) share: set-up, the call, and verdict accounting.

A provider module says only what differs: the SDK client, the request it sends, and where in the
answer the verdict and the token counts stand. This base keeps the rest identical for both, so a
verdict's cost, tokens and failure values mean the same whichever provider produced them:
building the client with the SDK's retries disabled (our `RetryPolicy` is the one that runs),
turning SDK exceptions into `JudgeFailure` values, and pricing what the answer used.

This module does not retry, cache, budget or trace; wrap a judge (see `labeling.factory`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

from labeling.cost import PriceTable
from labeling.judges.errors import failure_from_sdk_error
from labeling.rubric import ParsedVerdict, Rubric
from labeling.verdicts import JudgeFailure, JudgeResult, Verdict


class ApiJudgeConfig(Protocol):
    api_key: str
    model: str
    base_url: str
    timeout_s: float
    max_output_tokens: int
    name: str


def check_api_config(config: ApiJudgeConfig, provider_title: str) -> None:
    """Refuse a configuration that cannot produce a verdict (called from each config's `__post_init__`)."""
    if not config.api_key:
        raise ValueError(f"the {provider_title} judge needs an API key")
    if config.max_output_tokens < 16:
        raise ValueError("max_output_tokens must leave room for a verdict (>= 16)")


@dataclass(frozen=True)
class Answer:
    """What one answer used and cost; makes the verdict or the failure that carries those figures."""

    source: ApiJudge  # the judge that asked: name, provider, rubric version
    model: str  # as the answer names it
    tokens: tuple[int, int]  # (input, output)
    cost: float
    batch: bool

    def fail(self, kind: str, text: str) -> JudgeFailure:
        judge, (tokens_in, tokens_out) = self.source, self.tokens
        return JudgeFailure(
            kind, text, judge.name, judge.provider, self.model,  # type: ignore[arg-type]
            cost_usd=self.cost, input_tokens=tokens_in, output_tokens=tokens_out,
        )

    def verdict(self, parsed: ParsedVerdict, *, latency_s: float) -> Verdict:
        judge, (tokens_in, tokens_out) = self.source, self.tokens
        return Verdict(
            preferred=parsed.preferred, confidence=parsed.confidence, rationale=parsed.rationale,
            judge=judge.name, provider=judge.provider, model=self.model, rubric_version=judge.rubric_version,
            input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=self.cost, latency_s=latency_s, batch=self.batch,
        )


class ApiJudge:
    """Base of the paid-API judges; a subclass sets `provider`, `sdk` and builds its request."""

    provider: str
    sdk: ModuleType

    def __init__(self, config: Any, *, rubric: Rubric | None, prices: PriceTable | None, client: Any) -> None:
        self.config = config
        self.rubric = rubric or Rubric()
        self.prices = prices or PriceTable()
        self.prices.price(config.model)  # fail now, not after the first paid call
        self.name = config.name
        self.model = config.model
        self.rubric_version: str | None = self.rubric.version
        self.client = client or self._client_class()(
            api_key=config.api_key,
            base_url=config.base_url,
            max_retries=0,  # our RetryPolicy is the one that runs
            timeout=config.timeout_s,
        )

    def _client_class(self) -> Callable[..., Any]:
        raise NotImplementedError

    async def _call(self, send: Callable[[], Awaitable[Any]], parse: Callable[..., JudgeResult]) -> JudgeResult:
        """Send one request; an SDK error the mapping knows becomes a failure value, others raise."""
        started = time.perf_counter()
        try:
            response = await send()
        except Exception as exc:
            failure = failure_from_sdk_error(
                exc, self.sdk, judge=self.name, provider=self.provider, model=self.model
            )
            if failure is None:
                raise
            return failure
        return parse(response, latency_s=time.perf_counter() - started)

    def _answer(self, response: Any, tokens_in_field: str, tokens_out_field: str, *, batch: bool) -> Answer:
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, tokens_in_field, 0) or 0)
        tokens_out = int(getattr(usage, tokens_out_field, 0) or 0)
        return Answer(
            self,
            getattr(response, "model", None) or self.model,
            (tokens_in, tokens_out),
            self.prices.cost(self.model, tokens_in, tokens_out, batch=batch),
            batch,
        )

    async def aclose(self) -> None:
        await self.client.close()
