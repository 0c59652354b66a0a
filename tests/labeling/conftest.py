"""Fixtures for the judge tests: the loopback provider server, judges pointed at it, comparisons."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from labeling import (
    AnthropicJudge,
    AnthropicJudgeConfig,
    Comparison,
    OpenAIJudge,
    OpenAIJudgeConfig,
    RetryPolicy,
)
from tests.labeling.fake_providers import FakeProviders

# Short delays so that retry tests take milliseconds; the timeout is generous enough for a
# loaded CI machine but far below the fake's "slow" replies.
FAST_RETRY = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05, timeout_s=2.0)


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


@pytest.fixture
def openai_judge(fake: FakeProviders) -> Callable[..., OpenAIJudge]:
    def make(**overrides) -> OpenAIJudge:
        config = OpenAIJudgeConfig(**{"api_key": "sk-test", "base_url": fake.openai_url, "timeout_s": 2.0, **overrides})
        return OpenAIJudge(config)

    return make


@pytest.fixture
def anthropic_judge(fake: FakeProviders) -> Callable[..., AnthropicJudge]:
    def make(**overrides) -> AnthropicJudge:
        config = AnthropicJudgeConfig(
            **{"api_key": "sk-ant-test", "base_url": fake.anthropic_url, "timeout_s": 2.0, **overrides}
        )
        return AnthropicJudge(config)

    return make


def make_comparisons(n: int, *, prefix: str = "c") -> list[Comparison]:
    """Comparisons whose better response is known: the "good" one. A is better for even indices."""
    items = []
    for i in range(n):
        good, bad = f"A good, helpful answer number {i}.", f"A bad, rude answer number {i}."
        a, b = (good, bad) if i % 2 == 0 else (bad, good)
        items.append(Comparison(f"{prefix}{i}", f"Question {i}: how do I stay safe online?", a, b))
    return items


def expected_choice(comparison: Comparison) -> str:
    return "a" if "good" in comparison.response_a else "b"


class KeywordScorer:
    """A reward-model stand-in with a known answer: +1 per "good", -1 per "bad"."""

    def __init__(self) -> None:
        self.calls = 0
        self.texts = 0

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        assert len(prompts) == len(responses)
        self.calls += 1
        self.texts += len(responses)
        return [float(r.lower().count("good") - r.lower().count("bad")) for r in responses]
