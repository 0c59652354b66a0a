"""A local judge backed by a reward model: no network, no key, no cost.

It takes any object with `score(prompts, responses) -> Sequence[float]` (the reward_models batched
scorer satisfies it; so does a plain test double) and prefers the higher-scoring response, with
confidence sigmoid(|score difference| / T) - the Bradley-Terry probability the reward model was
trained to produce, where T is the scorer's calibration `temperature` when it has one (else 1).
A reward model scores each response on its own, so it has no position bias: both orders get the
same answer, and the second order is served from a small score memo.

This module does not load or train reward models.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from labeling.judges.batching import MicroBatcher
from labeling.verdicts import JudgeFailure, JudgeRequest, JudgeResult, Verdict


@runtime_checkable
class RewardScorer(Protocol):
    def score(self, prompts: list[str], responses: list[str]) -> Sequence[float]: ...


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


class RewardModelJudge:
    """Judges with a reward model's scores; requests are scored in micro-batches."""

    provider = "local"

    def __init__(
        self,
        scorer: RewardScorer,
        *,
        model: str = "reward-model",
        name: str = "local-rm",
        max_batch: int = 32,
        memo_size: int = 4096,
        temperature: float | None = None,
    ) -> None:
        if not callable(getattr(scorer, "score", None)):
            raise TypeError("scorer must have a score(prompts, responses) method")
        self.temperature = float(temperature if temperature is not None else getattr(scorer, "temperature", 1.0))
        if self.temperature <= 0:
            raise ValueError("temperature must be positive")
        self.scorer = scorer
        self.name = name
        self.model = model
        self.rubric_version: str | None = None  # a reward model has no rubric
        self._memo: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._memo_size = memo_size
        self._in_flight: dict[tuple[str, str], asyncio.Future[float]] = {}
        self._batcher: MicroBatcher[tuple[str, str], float] = MicroBatcher(self._score_batch, max_batch)

    def _score_batch(self, items: list[tuple[str, str]]) -> list[float]:
        scores = self.scorer.score([p for p, _ in items], [r for _, r in items])
        values = [float(s) for s in scores]
        if len(values) != len(items) or not all(math.isfinite(v) for v in values):
            raise ValueError(f"scorer returned {len(values)} scores (need {len(items)} finite values)")
        return values

    async def _score(self, prompt: str, response: str) -> float:
        key = (prompt, response)
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        # Both orders of a pair ask for the same two scores at the same moment: share the one
        # computation in flight instead of scoring every response twice.
        future = self._in_flight.get(key)
        if future is None:
            future = asyncio.ensure_future(self._batcher.submit(key))
            self._in_flight[key] = future
            future.add_done_callback(lambda _: self._in_flight.pop(key, None))
        value = await asyncio.shield(future)  # a cancelled waiter must not cancel the others' result
        self._memo[key] = value
        if len(self._memo) > self._memo_size:
            self._memo.popitem(last=False)
        return value

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        started = time.perf_counter()
        try:
            first, second = await asyncio.gather(
                self._score(request.prompt, request.first), self._score(request.prompt, request.second)
            )
        except Exception as exc:  # noqa: BLE001 - a broken scorer is a failed judge, not a lost pair
            return JudgeFailure("error", f"reward model failed: {exc!r}"[:500], self.name, self.provider, self.model)
        p_first = sigmoid((first - second) / self.temperature)
        preferred = "first" if first > second else "second" if second > first else "tie"
        return Verdict(
            preferred=preferred,
            confidence=max(p_first, 1.0 - p_first),
            rationale=f"reward {first:.4f} (A) vs {second:.4f} (B)",
            judge=self.name,
            provider=self.provider,
            model=self.model,
            rubric_version=None,
            latency_s=time.perf_counter() - started,
        )
