"""An LLM judge on OpenAI's Chat Completions API, with a JSON-schema structured verdict.

Uses the official `openai` SDK with its retries disabled (`max_retries=0`): retries, timeouts and
circuit breaking belong to `labeling.reliability`, so they are the same for every provider and can
be tested. The request body is built by one function that the Batch API path
(`labeling.batch.openai_batch`) reuses, so a batched verdict is exactly the synchronous one at
half the price.

Set-up, the call and the accounting are shared with the other paid judge (`labeling.judges.api_judge`).
This module does not retry, cache, budget or trace; wrap it (see `labeling.factory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai
from openai.types.chat import ChatCompletion

from labeling.cost import PriceTable, estimate_tokens
from labeling.judges.api_judge import ApiJudge, check_api_config
from labeling.rubric import (
    VERDICT_SCHEMA,
    Rubric,
    VerdictParseError,
    parse_verdict,
    render_structured_request,
)
from labeling.verdicts import JudgeRequest, JudgeResult

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True)
class OpenAIJudgeConfig:
    api_key: str
    model: str = "gpt-4o-mini"
    base_url: str = OPENAI_DEFAULT_BASE_URL  # point at a proxy, Azure-compatible gateway or a test server
    temperature: float | None = 0.0
    max_output_tokens: int = 300
    timeout_s: float = 60.0
    name: str = "openai"

    def __post_init__(self) -> None:
        check_api_config(self, "OpenAI")


class OpenAIJudge(ApiJudge):
    """Judges one ordered comparison per call with `chat.completions.create`."""

    provider = "openai"
    sdk = openai

    def __init__(
        self,
        config: OpenAIJudgeConfig,
        *,
        rubric: Rubric | None = None,
        prices: PriceTable | None = None,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        super().__init__(config, rubric=rubric, prices=prices, client=client)

    def _client_class(self) -> type[openai.AsyncOpenAI]:
        return openai.AsyncOpenAI

    def request_body(self, request: JudgeRequest) -> dict[str, Any]:
        """The Chat Completions body for one request (shared with the Batch API)."""
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": self.rubric.text},
                {"role": "user", "content": render_structured_request(request)},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "preference_verdict", "strict": True, "schema": VERDICT_SCHEMA},
            },
            "max_completion_tokens": self.config.max_output_tokens,
        }
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        return body

    def estimate_cost(self, request: JudgeRequest, *, batch: bool = False) -> float:
        """An upper bound: pessimistic input tokens and the full output allowance."""
        tokens_in = estimate_tokens(self.rubric.text) + estimate_tokens(render_structured_request(request)) + 16
        return self.prices.cost(self.config.model, tokens_in, self.config.max_output_tokens, batch=batch)

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        # The exact body a Batch API line carries, posted through the SDK client (its auth,
        # timeouts, error types and ChatCompletion parsing). `chat.completions.create(**body)`
        # would re-validate this fixed body on every call, ~1 ms of CPU that becomes the
        # bottleneck at 32+ calls in flight (bench/judge_throughput.py).
        return await self._call(
            lambda: self.client.post("/chat/completions", body=self.request_body(request), cast_to=ChatCompletion),
            self.parse_completion,
        )

    def parse_completion(self, completion: Any, *, latency_s: float = 0.0, batch: bool = False) -> JudgeResult:
        """A verdict (or failure) from a `ChatCompletion`, synchronous or from a batch output."""
        answer = self._answer(completion, "prompt_tokens", "completion_tokens", batch=batch)
        choices = getattr(completion, "choices", None) or []
        if not choices:
            return answer.fail("malformed", "completion has no choices")
        choice = choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            return answer.fail("refusal", f"model refused: {message.refusal}"[:500])
        if choice.finish_reason == "content_filter":
            return answer.fail("refusal", "answer withheld by the content filter")
        if choice.finish_reason == "length":
            return answer.fail("malformed", "answer truncated at max_output_tokens")
        try:
            parsed = parse_verdict(message.content or "")
        except VerdictParseError as exc:
            return answer.fail("malformed", str(exc))
        return answer.verdict(parsed, latency_s=latency_s)
