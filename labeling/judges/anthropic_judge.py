"""An LLM judge on Anthropic's Messages API, with the verdict returned through a forced tool call.

Tool use is the structured-output mechanism: the request offers one tool whose input schema is the
verdict schema and forces the model to call it, so the verdict arrives as already-decoded JSON.
Uses the official `anthropic` SDK with its retries disabled (`max_retries=0`), for the same reason
as the OpenAI judge. The request parameters are built by one function that Message Batches
(`labeling.batch.anthropic_batch`) reuse.

The installed SDK's `messages.create` no longer takes `temperature`; when one is configured it is
sent as an extra body field, and by default none is sent (the API default applies).

Set-up, the call and the accounting are shared with the other paid judge (`labeling.judges.api_judge`).
This module does not retry, cache, budget or trace; wrap it (see `labeling.factory`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anthropic

from labeling.cost import PriceTable, estimate_tokens
from labeling.judges.api_judge import ApiJudge, check_api_config
from labeling.rubric import (
    VERDICT_SCHEMA,
    VERDICT_TOOL_NAME,
    Rubric,
    VerdictParseError,
    parse_verdict,
    render_structured_request,
)
from labeling.verdicts import JudgeRequest, JudgeResult

ANTHROPIC_DEFAULT_BASE_URL = "https://api.anthropic.com"

_TOOL_INSTRUCTION = f"\n\nRecord your verdict by calling the `{VERDICT_TOOL_NAME}` tool."


@dataclass(frozen=True)
class AnthropicJudgeConfig:
    api_key: str
    model: str = "claude-haiku-4-5"
    base_url: str = ANTHROPIC_DEFAULT_BASE_URL
    temperature: float | None = None
    max_output_tokens: int = 300
    timeout_s: float = 60.0
    name: str = "anthropic"

    def __post_init__(self) -> None:
        check_api_config(self, "Anthropic")


class AnthropicJudge(ApiJudge):
    """Judges one ordered comparison per call with `messages.create` and a forced tool call."""

    provider = "anthropic"
    sdk = anthropic

    def __init__(
        self,
        config: AnthropicJudgeConfig,
        *,
        rubric: Rubric | None = None,
        prices: PriceTable | None = None,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        super().__init__(config, rubric=rubric, prices=prices, client=client)

    def _client_class(self) -> type[anthropic.AsyncAnthropic]:
        return anthropic.AsyncAnthropic

    def request_params(self, request: JudgeRequest) -> dict[str, Any]:
        """The Messages API parameters for one request (shared with Message Batches)."""
        params: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": self.config.max_output_tokens,
            "system": self.rubric.text,
            "messages": [{"role": "user", "content": render_structured_request(request) + _TOOL_INSTRUCTION}],
            "tools": [
                {
                    "name": VERDICT_TOOL_NAME,
                    "description": "Record which response is better, how sure you are, and why.",
                    "input_schema": VERDICT_SCHEMA,
                }
            ],
            "tool_choice": {"type": "tool", "name": VERDICT_TOOL_NAME},
        }
        if self.config.temperature is not None:
            params["temperature"] = self.config.temperature
        return params

    def estimate_cost(self, request: JudgeRequest, *, batch: bool = False) -> float:
        """An upper bound: pessimistic input tokens (tool definition included) and full output."""
        tokens_in = (
            estimate_tokens(self.rubric.text)
            + estimate_tokens(render_structured_request(request) + _TOOL_INSTRUCTION)
            + 400  # the tool definition and the tool-use system prompt the API adds
        )
        return self.prices.cost(self.config.model, tokens_in, self.config.max_output_tokens, batch=batch)

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        params = self.request_params(request)
        temperature = params.pop("temperature", None)
        extra_body = {"temperature": temperature} if temperature is not None else None
        return await self._call(
            lambda: self.client.messages.create(**params, extra_body=extra_body), self.parse_message
        )

    def parse_message(self, message: Any, *, latency_s: float = 0.0, batch: bool = False) -> JudgeResult:
        """A verdict (or failure) from a `Message`, synchronous or from a batch result."""
        answer = self._answer(message, "input_tokens", "output_tokens", batch=batch)
        if getattr(message, "stop_reason", None) == "refusal":
            return answer.fail("refusal", "model refused to judge this pair")
        blocks = getattr(message, "content", None) or []
        tool_calls = [
            b for b in blocks if getattr(b, "type", None) == "tool_use" and getattr(b, "name", None) == VERDICT_TOOL_NAME
        ]
        if not tool_calls:
            reason = getattr(message, "stop_reason", None)
            return answer.fail("malformed", f"no {VERDICT_TOOL_NAME} tool call in the answer (stop_reason={reason})")
        try:
            parsed = parse_verdict(tool_calls[0].input)
        except VerdictParseError as exc:
            return answer.fail("malformed", str(exc))
        return answer.verdict(parsed, latency_s=latency_s)
