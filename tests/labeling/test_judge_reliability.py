"""Retries with backoff and Retry-After, per-call timeouts and the circuit breaker."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from labeling import CircuitBreaker, JudgeFailure, JudgeRequest, ReliableJudge, RetryPolicy, Verdict
from tests.labeling.conftest import FAST_RETRY
from tests.labeling.fake_providers import MALFORMED, OK, REFUSAL, rate_limited, server_error, slow

REQUEST = JudgeRequest("c1", "ab", "q", "A good answer.", "A bad answer.")


def run(coro):
    return asyncio.run(coro)


@pytest.mark.parametrize("ms", [False, True], ids=["retry-after", "retry-after-ms"])
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_429_waits_for_retry_after_then_succeeds(fake, openai_judge, anthropic_judge, provider, ms):
    base = openai_judge() if provider == "openai" else anthropic_judge()
    getattr(fake, provider).script.append(rate_limited(0.3, ms=ms))
    path = "/v1/chat/completions" if provider == "openai" else "/v1/messages"

    result = run(ReliableJudge(base, FAST_RETRY).judge(REQUEST))

    assert isinstance(result, Verdict) and result.attempts == 2
    first, second = fake.calls_to(path)
    # The policy's own backoff would wait ~0.01 s; waiting 0.3 s shows the header was obeyed.
    assert second.at - first.at >= 0.3


def test_5xx_is_retried_with_exponential_backoff_and_jitter(fake, openai_judge):
    fake.openai.script.extend([server_error(500), server_error(503), server_error(500), OK])
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    policy = RetryPolicy(max_attempts=4, base_delay_s=0.4, max_delay_s=1.0)
    judge = ReliableJudge(openai_judge(), policy, sleep=record_sleep, rng=random.Random(7))
    result = run(judge.judge(REQUEST))

    assert isinstance(result, Verdict) and result.attempts == 4
    assert fake.openai.calls == 4
    ceilings = [0.4, 0.8, 1.0]  # doubling, capped at max_delay_s
    assert len(sleeps) == 3
    for delay, ceiling in zip(sleeps, ceilings):
        assert ceiling / 2 <= delay <= ceiling  # "equal jitter": half fixed, half random


def test_gives_up_after_max_attempts(fake, openai_judge):
    fake.openai.default = server_error(500)
    result = run(ReliableJudge(openai_judge(), FAST_RETRY).judge(REQUEST))
    assert isinstance(result, JudgeFailure) and result.kind == "server_error"
    assert result.attempts == FAST_RETRY.max_attempts == fake.openai.calls


def test_a_retry_after_beyond_the_limit_falls_back_at_once(fake, openai_judge):
    fake.openai.script.append(rate_limited(600))
    started = time.perf_counter()
    result = run(ReliableJudge(openai_judge(), FAST_RETRY).judge(REQUEST))
    assert isinstance(result, JudgeFailure) and result.kind == "rate_limit"
    assert fake.openai.calls == 1
    assert time.perf_counter() - started < 5


def test_per_call_timeout_then_retry(fake, openai_judge):
    fake.openai.script.append(slow(3.0))
    policy = RetryPolicy(max_attempts=2, base_delay_s=0.01, max_delay_s=0.01, timeout_s=0.4)
    started = time.perf_counter()
    result = run(ReliableJudge(openai_judge(timeout_s=30), policy).judge(REQUEST))
    assert isinstance(result, Verdict) and result.attempts == 2
    assert time.perf_counter() - started < 2.5  # did not wait for the slow answer


def test_malformed_answers_are_retried_and_their_cost_is_kept(fake, openai_judge):
    base = openai_judge()

    async def scenario():
        # An SDK client belongs to one event loop: run the three calls in the same one.
        fake.openai.script.append(MALFORMED)
        malformed = await base.judge(REQUEST)  # what one malformed attempt costs
        ok = await base.judge(REQUEST)
        fake.openai.script.append(MALFORMED)
        return malformed, ok, await ReliableJudge(base, FAST_RETRY).judge(REQUEST)

    malformed, ok, result = run(scenario())

    assert isinstance(malformed, JudgeFailure) and isinstance(ok, Verdict)
    assert isinstance(result, Verdict) and result.attempts == 2
    assert result.cost_usd == pytest.approx(malformed.cost_usd + ok.cost_usd)


def test_a_refusal_is_not_retried(fake, anthropic_judge):
    fake.anthropic.script.append(REFUSAL)
    result = run(ReliableJudge(anthropic_judge(), FAST_RETRY).judge(REQUEST))
    assert isinstance(result, JudgeFailure) and result.kind == "refusal"
    assert fake.anthropic.calls == 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_circuit_breaker_state_machine():
    clock = Clock()
    breaker = CircuitBreaker("openai", failure_threshold=2, reset_after_s=10, clock=clock)
    assert breaker.allow() and breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "closed"  # one failure is not a pattern
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow()

    clock.now = 10.0
    assert breaker.state == "half_open"
    assert breaker.allow()  # one probe...
    assert not breaker.allow()  # ...and only one
    breaker.record_failure()  # the probe failed: open for another period
    assert breaker.state == "open" and breaker.times_opened == 2

    clock.now = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def test_open_breaker_short_circuits_without_calling(fake, openai_judge):
    fake.openai.default = server_error(500)
    breaker = CircuitBreaker("openai", failure_threshold=2, reset_after_s=60)
    judge = ReliableJudge(openai_judge(), FAST_RETRY, breaker)

    async def scenario():
        first = await judge.judge(REQUEST)
        calls = fake.openai.calls
        return first, calls, await judge.judge(REQUEST)

    first, calls_after_first, second = run(scenario())

    assert first.kind == "circuit_open"  # opened during the first request's retries
    assert calls_after_first == 2
    assert second.kind == "circuit_open" and fake.openai.calls == calls_after_first


def test_refusals_do_not_trip_the_breaker(fake, openai_judge):
    fake.openai.default = REFUSAL
    breaker = CircuitBreaker("openai", failure_threshold=1)
    judge = ReliableJudge(openai_judge(), FAST_RETRY, breaker)

    async def twice():
        await judge.judge(REQUEST)
        await judge.judge(REQUEST)

    run(twice())
    assert breaker.state == "closed" and fake.openai.calls == 2


def test_retry_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay_s=2, max_delay_s=1)
