"""What both providers' batch APIs share: planning under a budget, request ids, and turning the
per-order results that come back into labels.

A batch holds two requests per comparison (orders "ab" and "ba"), named by `custom_id`
"<comparison id>__<order>". Orders whose verdict is already cached are not sent again (and are
taken from the cache at collection), so a pair is never billed twice. A batch is billed at half
the synchronous price; the plan reserves its pessimistic cost on the budget, leaving out the
comparisons that do not fit.

A comparison whose two orders did not both succeed becomes a `LabelFailure`: it stays unlabeled
and a later run (batch or synchronous) picks it up.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from labeling.cache import JudgeCache, cache_key
from labeling.cost import Budget
from labeling.pairwise import combine_orders
from labeling.verdicts import (
    Comparison,
    JudgeFailure,
    JudgeRequest,
    JudgeResult,
    Label,
    LabelFailure,
    Order,
    Verdict,
)

ORDERS: tuple[Order, Order] = ("ab", "ba")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,60}$")  # Anthropic allows [A-Za-z0-9_-]{1,64} per custom_id

BatchState = Literal["in_progress", "ended", "failed", "expired", "cancelled"]


class BatchError(RuntimeError):
    """A batch could not be submitted or read."""


def custom_id(comparison_id: str, order: Order) -> str:
    if not _ID.match(comparison_id):
        raise ValueError(
            f"comparison id {comparison_id!r} cannot name a batch request: use 1-60 characters of A-Z a-z 0-9 _ -"
        )
    return f"{comparison_id}__{order}"


def parse_custom_id(value: str) -> tuple[str, Order]:
    comparison_id, sep, order = value.rpartition("__")
    if not sep or order not in ORDERS:
        raise ValueError(f"not a judge batch request id: {value!r}")
    return comparison_id, order  # type: ignore[return-value]


@dataclass(frozen=True)
class BatchRequest:
    custom_id: str
    request: JudgeRequest


@dataclass
class BatchPlan:
    """What to send: the requests, the comparisons they cover, and the budget reserved for them."""

    requests: list[BatchRequest]
    comparison_ids: list[str]
    estimated_cost_usd: float
    left_out_for_budget: list[str] = field(default_factory=list)
    fully_cached: list[str] = field(default_factory=list)


def plan_batch(
    comparisons: Sequence[Comparison],
    *,
    estimate: Callable[[JudgeRequest], float],
    key: Callable[[JudgeRequest], str] | None = None,
    cache: JudgeCache | None = None,
    budget: Budget | None = None,
) -> BatchPlan:
    """Requests for every order not already cached, within the budget (the reservation is kept:
    settle it with `budget.settle(plan.estimated_cost_usd, actual)` once the batch is collected)."""
    plan = BatchPlan([], [], 0.0)
    for comparison in comparisons:
        pending = []
        for order in ORDERS:
            request = JudgeRequest.from_comparison(comparison, order)
            if cache is not None and key is not None and cache.get(key(request)) is not None:
                continue
            pending.append(BatchRequest(custom_id(comparison.id, order), request))
        if not pending:
            plan.fully_cached.append(comparison.id)
            continue
        cost = sum(estimate(r.request) for r in pending)
        if budget is not None and not budget.try_reserve(cost):
            plan.left_out_for_budget.append(comparison.id)
            continue
        plan.requests.extend(pending)
        plan.comparison_ids.append(comparison.id)
        plan.estimated_cost_usd += cost
    return plan


@dataclass(frozen=True)
class BatchSubmission:
    """A submitted batch, as the app stores it (in BatchJob) to collect it later."""

    provider: str
    batch_id: str
    judge: str
    model: str
    rubric_version: str | None
    comparison_ids: tuple[str, ...]
    request_count: int
    estimated_cost_usd: float
    input_file_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "comparison_ids": list(self.comparison_ids)}


@dataclass(frozen=True)
class BatchStatus:
    provider: str
    batch_id: str
    state: BatchState
    raw_status: str
    succeeded: int
    failed: int
    total: int

    @property
    def done(self) -> bool:
        return self.state != "in_progress"


@dataclass
class BatchCollection:
    labels: list[Label]
    failures: list[LabelFailure]
    cost_usd: float


def cached_key_for(provider: str, model: str, rubric_version: str | None, temperature: float | None):
    def key(request: JudgeRequest) -> str:
        return cache_key(
            provider=provider, model=model, rubric_version=rubric_version, request=request, temperature=temperature
        )

    return key


class BatchJudge(Protocol):
    """What the batch paths read from a paid-API judge (`labeling.judges.api_judge.ApiJudge`)."""

    name: str
    provider: str
    model: str
    rubric_version: str | None
    config: Any

    def estimate_cost(self, request: JudgeRequest, *, batch: bool = False) -> float: ...


def judge_key(judge: BatchJudge) -> Callable[[JudgeRequest], str]:
    """The cache key a judge's synchronous verdicts are stored under, so batch and sync share a cache."""
    return cached_key_for(judge.provider, judge.model, judge.rubric_version, judge.config.temperature)


def plan_for_judge(
    judge: BatchJudge,
    comparisons: Sequence[Comparison],
    *,
    cache: JudgeCache | None = None,
    budget: Budget | None = None,
) -> BatchPlan:
    """`plan_batch` with the judge's batch-price estimate and cache key."""
    return plan_batch(
        comparisons,
        estimate=lambda request: judge.estimate_cost(request, batch=True),
        key=judge_key(judge),
        cache=cache,
        budget=budget,
    )


def submission(
    judge: BatchJudge, plan: BatchPlan, batch_id: str, request_count: int, *, input_file_id: str | None = None
) -> BatchSubmission:
    """The record of a batch just created for `plan`."""
    return BatchSubmission(
        provider=judge.provider,
        batch_id=batch_id,
        judge=judge.name,
        model=judge.model,
        rubric_version=judge.rubric_version,
        comparison_ids=tuple(plan.comparison_ids),
        request_count=request_count,
        estimated_cost_usd=plan.estimated_cost_usd,
        input_file_id=input_file_id,
    )


def assemble_for_judge(
    judge: BatchJudge,
    comparisons: Sequence[Comparison],
    results: Mapping[str, JudgeResult],
    *,
    cache: JudgeCache | None = None,
) -> BatchCollection:
    """`assemble` under the judge's name, provider, model and cache key."""
    return assemble(
        comparisons, results, judge=judge.name, provider=judge.provider, model=judge.model, key=judge_key(judge), cache=cache
    )


def assemble(
    comparisons: Sequence[Comparison],
    results: Mapping[str, JudgeResult],
    *,
    judge: str,
    provider: str,
    model: str,
    key: Callable[[JudgeRequest], str] | None = None,
    cache: JudgeCache | None = None,
) -> BatchCollection:
    """Labels from per-request results keyed by custom id; cached verdicts fill orders not sent."""
    labels: list[Label] = []
    failures: list[LabelFailure] = []
    cost = 0.0
    for comparison in comparisons:
        verdicts: list[Verdict] = []
        problems: list[JudgeFailure] = []
        for order in ORDERS:
            request = JudgeRequest.from_comparison(comparison, order)
            result = results.get(custom_id(comparison.id, order))
            if result is None and cache is not None and key is not None:
                payload = cache.get(key(request))
                if payload is not None:
                    result = Verdict.from_dict(dict(payload)).with_(
                        cached=True, cost_usd=0.0, input_tokens=0, output_tokens=0, attempts=0
                    )
            if result is None:
                result = JudgeFailure("error", f"no batch result for order {order}", judge, provider, model)
            cost += result.cost_usd
            if isinstance(result, Verdict):
                if cache is not None and key is not None and not result.cached:
                    cache.put(key(request), result.to_dict())
                verdicts.append(result)
            else:
                problems.append(result)
        if problems:
            spent = sum(v.cost_usd for v in verdicts) + sum(p.cost_usd for p in problems)
            failures.append(LabelFailure(comparison.id, tuple(problems), spent))
        else:
            labels.append(combine_orders(comparison.id, verdicts[0], verdicts[1]))
    return BatchCollection(labels, failures, cost)
