"""Retries, per-call timeouts and a circuit breaker around a remote judge.

The provider SDKs are built with their own retries switched off (`max_retries=0`) so that this is
the one retry policy that runs: exponential backoff with jitter, honouring a provider's
`Retry-After` on 429 and 5xx, a timeout per attempt, and a circuit breaker per provider that stops
calling a provider after repeated failures and probes it again after a cool-down. When a judge
gives up, the fallback chain (`labeling.chain`) moves the pair to the next judge.

This module does not know any provider's API: it only reads `JudgeFailure` values.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from labeling.verdicts import PROVIDER_FAILURE_KINDS, Judge, JudgeFailure, JudgeRequest, JudgeResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry one judge call."""

    max_attempts: int = 4
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0  # a longer Retry-After means "use another judge", not "wait"
    timeout_s: float = 60.0  # per attempt

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay_s < 0 or self.max_delay_s < self.base_delay_s:
            raise ValueError("need 0 <= base_delay_s <= max_delay_s")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """Delay before attempt `attempt + 1`: exponential, with "equal jitter" (half fixed, half
        random) so that many clients that failed together do not retry together."""
        ceiling = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class CircuitBreaker:
    """Closed -> open after `failure_threshold` consecutive provider failures -> half-open after
    `reset_after_s` (one probe call allowed) -> closed on success, open again on failure.

    Shared by every judge of one provider, so a provider that is down is skipped at once instead
    of every pair paying for its own timeouts and retries.
    """

    def __init__(
        self,
        provider: str,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        self.provider = provider
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._consecutive_failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False
        self.times_opened = 0

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.reset_after_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._probe_in_flight:
            self._probe_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self._consecutive_failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        self._consecutive_failures += 1
        if self._probe_in_flight or self._consecutive_failures >= self.failure_threshold:
            if self._opened_at is None or self._probe_in_flight:
                self.times_opened += 1
                log.warning("circuit for %s opened after %d failures", self.provider, self._consecutive_failures)
            self._opened_at = self._clock()
            self._probe_in_flight = False

    def release_probe(self) -> None:
        """A probe that ended without saying anything about the provider (e.g. a refusal)."""
        self._probe_in_flight = False


class ReliableJudge:
    """Wraps a remote judge with timeouts, retries and a circuit breaker.

    The returned result's `cost_usd`, tokens and `attempts` add up every attempt, so money spent on
    a malformed answer before a good one is never lost from the accounts.
    """

    def __init__(
        self,
        inner: Judge,
        policy: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()
        self.breaker = breaker
        self.name, self.provider, self.model = inner.name, inner.provider, inner.model
        self.rubric_version = inner.rubric_version
        self._sleep = sleep
        self._rng = rng or random.Random()

    def estimate_cost(self, request: JudgeRequest) -> float:
        return self.inner.estimate_cost(request)  # type: ignore[attr-defined]

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        spent = 0.0
        tokens_in = tokens_out = calls = 0
        result: JudgeResult | None = None
        for attempt in range(1, self.policy.max_attempts + 1):
            if self.breaker is not None and not self.breaker.allow():
                result = self._failure("circuit_open", f"{self.provider} circuit is open")
                break
            calls += 1
            result = await self._attempt(request)
            spent += result.cost_usd
            tokens_in += result.input_tokens
            tokens_out += result.output_tokens
            self._record(result)
            if not isinstance(result, JudgeFailure) or not result.retryable:
                break
            if attempt == self.policy.max_attempts:
                break
            delay = self._delay(result, attempt)
            if delay is None:
                break
            log.info("%s %s attempt %d failed (%s); retrying in %.2fs", self.name, request.comparison_id,
                     attempt, result.kind, delay)
            await self._sleep(delay)
        assert result is not None
        return result.with_(cost_usd=spent, input_tokens=tokens_in, output_tokens=tokens_out, attempts=calls)

    async def _attempt(self, request: JudgeRequest) -> JudgeResult:
        try:
            # asyncio.timeout, unlike wait_for, runs the call in this task (no extra task per call).
            async with asyncio.timeout(self.policy.timeout_s):
                return await self.inner.judge(request)
        except TimeoutError:
            return self._failure("timeout", f"no answer within {self.policy.timeout_s}s")

    def _delay(self, failure: JudgeFailure, attempt: int) -> float | None:
        if failure.retry_after_s is not None:
            if failure.retry_after_s > self.policy.max_retry_after_s:
                return None  # the provider asks for a long pause: better to fall back now
            # The server's delay is a minimum; a little jitter on top spreads the retries.
            return max(failure.retry_after_s, 0.0) + self._rng.uniform(0, 0.1)
        return self.policy.backoff_s(attempt, self._rng)

    def _record(self, result: JudgeResult) -> None:
        if self.breaker is None:
            return
        if isinstance(result, JudgeFailure):
            if result.kind in PROVIDER_FAILURE_KINDS:
                self.breaker.record_failure()
            else:
                self.breaker.release_probe()
        else:
            self.breaker.record_success()

    def _failure(self, kind: str, message: str) -> JudgeFailure:
        return JudgeFailure(kind, message, self.name, self.provider, self.model)  # type: ignore[arg-type]
