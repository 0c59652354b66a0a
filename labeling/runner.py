"""Labeling many comparisons at once: bounded concurrency, one result per pair, a cost report.

`label_comparisons` runs a fallback chain over comparisons with at most `concurrency` judge calls
in flight (an `asyncio.Semaphore`; a call keeps its slot while it backs off before a retry, which
eases the pressure on a provider that is rate limiting us). Every comparison ends with exactly one
result, a `Label` or a `LabelFailure`, handed to `on_result` as soon as it exists, so a caller can
commit each label immediately and a crashed run loses at most the pairs in flight.

The report gives, per judge, the labels it produced, its consistency rate across the two orders,
the calls it failed, tokens and money spent, and the cost per label.

This module does not store anything; `on_result` is where the caller does.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from labeling.chain import FallbackChain
from labeling.verdicts import Comparison, JudgeFailure, Label, LabelFailure, LabelResult


@dataclass
class JudgeStats:
    """What one judge did during a run."""

    judge: str
    labels: int = 0
    consistent: int = 0
    cached_verdicts: int = 0
    failed_pairs: int = 0
    failure_kinds: Counter = field(default_factory=Counter)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0  # includes what its failed attempts cost

    @property
    def consistency_rate(self) -> float | None:
        return self.consistent / self.labels if self.labels else None

    @property
    def cost_per_label(self) -> float | None:
        return self.cost_usd / self.labels if self.labels else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "labels": self.labels,
            "consistent": self.consistent,
            "consistency_rate": self.consistency_rate,
            "cached_verdicts": self.cached_verdicts,
            "failed_pairs": self.failed_pairs,
            "failure_kinds": dict(self.failure_kinds),
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": round(self.cost_usd, 8),
            "cost_per_label_usd": None if self.cost_per_label is None else round(self.cost_per_label, 8),
        }


@dataclass
class LabelingReport:
    labels: list[Label]
    failures: list[LabelFailure]
    judges: dict[str, JudgeStats]
    elapsed_s: float

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.judges.values())

    @property
    def labels_per_s(self) -> float:
        return len(self.labels) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "labeled": len(self.labels),
            "failed": len(self.failures),
            "cost_usd": round(self.cost_usd, 8),
            "cost_per_label_usd": round(self.cost_usd / len(self.labels), 8) if self.labels else None,
            "elapsed_s": round(self.elapsed_s, 3),
            "labels_per_s": round(self.labels_per_s, 3),
            "judges": {name: stats.to_dict() for name, stats in self.judges.items()},
        }


def summarize(results: Iterable[LabelResult], judge_names: Iterable[str] = (), elapsed_s: float = 0.0) -> LabelingReport:
    """Per-judge statistics of a set of results (labels and failures)."""
    stats: dict[str, JudgeStats] = {name: JudgeStats(name) for name in judge_names}

    def of(name: str) -> JudgeStats:
        return stats.setdefault(name, JudgeStats(name))

    def failed(failure: JudgeFailure) -> None:
        s = of(failure.judge)
        s.failed_pairs += 1
        s.failure_kinds[failure.kind] += 1
        s.cost_usd += failure.cost_usd
        s.input_tokens += failure.input_tokens
        s.output_tokens += failure.output_tokens

    labels: list[Label] = []
    failures: list[LabelFailure] = []
    for result in results:
        if isinstance(result, LabelFailure):
            failures.append(result)
            for failure in result.failures:
                failed(failure)
            continue
        labels.append(result)
        s = of(result.judge)
        s.labels += 1
        s.consistent += int(result.consistent)
        s.cached_verdicts += sum(int(v.cached) for v in result.verdicts)
        s.input_tokens += sum(v.input_tokens for v in result.verdicts)
        s.output_tokens += sum(v.output_tokens for v in result.verdicts)
        s.cost_usd += sum(v.cost_usd for v in result.verdicts)
        for failure in result.fallbacks:
            failed(failure)
    return LabelingReport(labels, failures, stats, elapsed_s)


async def label_comparisons(
    comparisons: Iterable[Comparison],
    chain: FallbackChain,
    *,
    concurrency: int = 8,
    on_result: Callable[[LabelResult], None] | None = None,
    progress: bool = False,
) -> LabelingReport:
    """Label every comparison once. Results come back in input order inside the report.

    `on_result` runs in the event loop as each pair finishes; if it raises, the run stops (the
    pairs already handed over stay handed over) and the exception propagates.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    items = list(comparisons)
    ids = [c.id for c in items]
    if len(set(ids)) != len(ids):
        duplicated = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"comparison ids must be unique; repeated: {duplicated}")

    limiter = asyncio.Semaphore(concurrency)
    results: list[LabelResult | None] = [None] * len(items)
    next_index = iter(range(len(items)))
    bar = _progress_bar(len(items)) if progress else None
    started = time.perf_counter()

    async def worker() -> None:
        for index in next_index:  # a shared iterator: each index is taken by exactly one worker
            result = await chain.label(items[index], limiter)
            results[index] = result
            if on_result is not None:
                on_result(result)
            if bar is not None:
                bar.update(1)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(items))):
                group.create_task(worker())
    finally:
        if bar is not None:
            bar.close()
    done = [r for r in results if r is not None]
    return summarize(done, chain.names, time.perf_counter() - started)


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="labeling", unit="pair")
