"""The OpenAI and Anthropic judges against the loopback server, through the real SDK clients."""

from __future__ import annotations

import asyncio

import pytest

from labeling import JudgeFailure, JudgeRequest, PriceTable, PricingError, Verdict
from labeling.judges import OpenAIJudge, OpenAIJudgeConfig
from tests.labeling.fake_providers import GARBAGE, MALFORMED, OK, REFUSAL, rate_limited, server_error, slow

REQUEST = JudgeRequest("c1", "ab", "How do I stay safe online?", "A good answer.", "A bad answer.")


def run(coro):
    return asyncio.run(coro)


def test_openai_sends_a_strict_json_schema_and_parses_the_verdict(fake, openai_judge):
    judge = openai_judge(temperature=0.0)
    result = run(judge.judge(REQUEST))

    assert isinstance(result, Verdict)
    assert result.preferred == "first"  # the fake prefers the "good" response, shown first here
    assert result.model == "gpt-4o-mini-2024-07-18"  # provenance: what the provider says answered
    (call,) = fake.calls_to("/v1/chat/completions")
    body = call.body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert body["response_format"]["json_schema"]["schema"]["required"] == ["choice", "confidence", "rationale"]
    assert body["messages"][0] == {"role": "system", "content": judge.rubric.text}
    assert "[Response A]\nA good answer." in body["messages"][1]["content"]
    assert body["temperature"] == 0.0
    assert call.headers["authorization"] == "Bearer sk-test"


def test_openai_cost_is_usage_times_price(fake, openai_judge):
    result = run(openai_judge().judge(REQUEST))
    completion = fake.openai_completion(fake.calls_to("/v1/chat/completions")[0].body, OK)  # same usage rule
    usage = completion["usage"]
    price = PriceTable().price("gpt-4o-mini")
    expected = (usage["prompt_tokens"] * price.input_per_mtok + usage["completion_tokens"] * price.output_per_mtok) / 1e6
    assert (result.input_tokens, result.output_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert result.cost_usd == pytest.approx(expected)
    assert result.cost_usd <= openai_judge().estimate_cost(REQUEST)  # the estimate is an upper bound


def test_anthropic_forces_the_verdict_tool_and_parses_it(fake, anthropic_judge):
    judge = anthropic_judge()
    result = run(judge.judge(JudgeRequest("c1", "ba", "q", "A bad answer.", "A good answer.")))

    assert isinstance(result, Verdict)
    assert result.preferred == "second"
    assert result.model.startswith("claude-haiku-4-5")
    (call,) = fake.calls_to("/v1/messages")
    assert call.body["tool_choice"] == {"type": "tool", "name": "record_verdict"}
    assert call.body["tools"][0]["input_schema"]["properties"]["choice"]["enum"] == ["A", "B", "tie"]
    assert call.body["system"] == judge.rubric.text
    assert "temperature" not in call.body  # none configured: the API default applies
    assert call.headers["authorization"] == "Bearer sk-ant-test"  # this SDK version sends keys as bearer tokens
    price = PriceTable().price("claude-haiku-4-5")
    assert result.cost_usd == pytest.approx(
        (result.input_tokens * price.input_per_mtok + result.output_tokens * price.output_per_mtok) / 1e6
    )


def test_anthropic_temperature_is_sent_when_configured(fake, anthropic_judge):
    run(anthropic_judge(temperature=0.2).judge(REQUEST))
    assert fake.calls_to("/v1/messages")[0].body["temperature"] == 0.2


@pytest.mark.parametrize(
    "reply, kind, billed",
    [
        (rate_limited(7), "rate_limit", False),
        (server_error(500), "server_error", False),
        (server_error(529), "server_error", False),
        (MALFORMED, "malformed", True),
        (REFUSAL, "refusal", True),
        (GARBAGE, "malformed", False),
        (slow(5.0), "timeout", False),
    ],
)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_provider_errors_become_typed_failures(fake, openai_judge, anthropic_judge, provider, reply, kind, billed):
    """Each failure is a value, not an exception, and the SDK does not retry on its own."""
    judge = openai_judge(timeout_s=0.5) if provider == "openai" else anthropic_judge(timeout_s=0.5)
    getattr(fake, provider).script.append(reply)

    result = run(judge.judge(REQUEST))

    assert isinstance(result, JudgeFailure)
    assert result.kind == kind
    assert (result.cost_usd > 0) is billed  # refused or malformed answers still used tokens
    if kind == "rate_limit":
        assert result.retry_after_s == 7.0
    assert getattr(fake, provider).calls == 1  # max_retries=0: our policy is the only one


def test_unknown_model_price_is_refused_up_front(fake):
    with pytest.raises(PricingError, match="no price configured"):
        OpenAIJudge(OpenAIJudgeConfig(api_key="k", base_url=fake.openai_url, model="my-finetune"))


def test_dated_snapshot_uses_the_base_model_price():
    table = PriceTable()
    assert table.price("gpt-4o-mini-2024-07-18") == table.price("gpt-4o-mini")
    assert table.cost("gpt-4o-mini", 1_000_000, 0, batch=True) == pytest.approx(table.price("gpt-4o-mini").input_per_mtok / 2)


def test_judge_config_needs_a_key():
    with pytest.raises(ValueError, match="API key"):
        OpenAIJudgeConfig(api_key="")
