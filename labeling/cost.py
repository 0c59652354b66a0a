"""What a judge call costs, and a budget that refuses a call before it could overspend.

Costs are token usage times a configurable price table (USD per million input / output tokens per
model); requests sent through a provider's batch API cost half. Before each paid call
`BudgetedJudge` reserves a pessimistic estimate of its cost (input tokens estimated from the text,
output tokens at the call's maximum) and settles the reservation with the real cost afterwards, so
concurrent calls can never together spend more than the budget.

This module does not count tokens exactly (no provider tokenizer is available offline) and does
not know any provider's API.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from labeling.verdicts import Judge, JudgeFailure, JudgeRequest, JudgeResult

BATCH_DISCOUNT = 0.5
"""Both OpenAI's Batch API and Anthropic's Message Batches bill half the synchronous price."""


class PricingError(ValueError):
    """A model has no price, so its spending cannot be controlled."""


@dataclass(frozen=True)
class ModelPrice:
    """USD per one million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        if self.input_per_mtok < 0 or self.output_per_mtok < 0:
            raise PricingError("prices must be non-negative")


# Published list prices when this was written; deployments pass their own table. A model missing
# from the table is refused up front, because a budget cannot be enforced without a price.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40),
    "gpt-4o": ModelPrice(2.50, 10.00),
    "claude-haiku-4-5": ModelPrice(1.00, 5.00),
    "claude-3-5-haiku-latest": ModelPrice(0.80, 4.00),
    "claude-sonnet-4-5": ModelPrice(3.00, 15.00),
}


@dataclass(frozen=True)
class PriceTable:
    """Prices by model name; a dated snapshot name ("gpt-4o-mini-2024-07-18") matches its base."""

    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    def price(self, model: str) -> ModelPrice:
        if model in self.prices:
            return self.prices[model]
        # Providers report dated snapshots ("claude-haiku-4-5-20251001"); the longest configured
        # prefix is the base model the snapshot belongs to.
        candidates = [name for name in self.prices if model.startswith(name + "-")]
        if candidates:
            return self.prices[max(candidates, key=len)]
        raise PricingError(f"no price configured for model {model!r}; add it to the price table")

    def cost(self, model: str, input_tokens: int, output_tokens: int, *, batch: bool = False) -> float:
        price = self.price(model)
        usd = (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / 1_000_000
        return usd * BATCH_DISCOUNT if batch else usd


def estimate_tokens(text: str) -> int:
    """A deliberately pessimistic token count: ~3 characters per token (English averages ~4)."""
    return math.ceil(len(text) / 3) + 8


class BudgetExceeded(RuntimeError):
    pass


class Budget:
    """A USD ceiling shared by every paid judge of a run. Thread- and task-safe.

    `reserve` before a call, `settle` after it: the budget never commits more than its limit, even
    with many calls in flight.
    """

    def __init__(self, limit_usd: float | None) -> None:
        if limit_usd is not None and limit_usd < 0:
            raise ValueError("budget must be non-negative")
        self.limit_usd = limit_usd
        self.spent_usd = 0.0
        self._reserved = 0.0
        self._lock = threading.Lock()

    @property
    def remaining_usd(self) -> float | None:
        if self.limit_usd is None:
            return None
        with self._lock:
            return max(self.limit_usd - self.spent_usd - self._reserved, 0.0)

    def try_reserve(self, amount_usd: float) -> bool:
        """Reserve `amount_usd` if it fits in what is left; False (and nothing reserved) if not."""
        with self._lock:
            if self.limit_usd is not None and self.spent_usd + self._reserved + amount_usd > self.limit_usd:
                return False
            self._reserved += amount_usd
            return True

    def settle(self, reserved_usd: float, actual_usd: float) -> None:
        """Release a reservation and record what the call really cost."""
        with self._lock:
            self._reserved = max(self._reserved - reserved_usd, 0.0)
            self.spent_usd += actual_usd


class BudgetedJudge:
    """Wraps a paid judge: refuses (as a `budget_exhausted` failure) any call that might not fit.

    The wrapped judge must offer `estimate_cost(request) -> float`, an upper bound of what the
    call can cost.
    """

    def __init__(self, inner: Judge, budget: Budget) -> None:
        if not hasattr(inner, "estimate_cost"):
            raise TypeError(f"{type(inner).__name__} has no estimate_cost(); it cannot be budgeted")
        self.inner = inner
        self.budget = budget
        self.name, self.provider, self.model = inner.name, inner.provider, inner.model
        self.rubric_version = inner.rubric_version

    def estimate_cost(self, request: JudgeRequest) -> float:
        return self.inner.estimate_cost(request)  # type: ignore[attr-defined]

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        estimate = self.estimate_cost(request)
        if not self.budget.try_reserve(estimate):
            return JudgeFailure(
                "budget_exhausted",
                f"next call may cost ${estimate:.6f}; ${self.budget.remaining_usd:.6f} of the budget left",
                self.name,
                self.provider,
                self.model,
            )
        result: JudgeResult | None = None
        try:
            result = await self.inner.judge(request)
            return result
        finally:
            # Settled even when the call is cancelled (e.g. by a timeout): the reservation must not
            # leak, and a call cut off on our side may still be billed, so count the estimate.
            self.budget.settle(estimate, result.cost_usd if result is not None else estimate)
