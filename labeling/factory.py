"""Assembling a fallback chain from configuration: which judges, in which order, wrapped how.

A remote judge is wrapped, from the outside in, as

    CachedJudge -> ReliableJudge (retries, timeout, breaker) -> BudgetedJudge -> TracedJudge -> judge

so that a cached verdict costs nothing and touches no provider, every attempt is budgeted and
traced, and the breaker is shared by all judges of one provider. Local judges are only traced:
they are free, so neither cached nor budgeted.

Judge names in `LabelingConfig.judges`: "openai", "anthropic", "local" (the reward model when one
is given, else the local instruct model), or explicitly "local-rm" / "local-smollm2". A named judge
without its configuration (e.g. no API key) is skipped when `skip_unavailable` is set, so
`openai,anthropic,local` works out of the box with only the local judge.

This module reads no environment and opens no connection until a judge is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from labeling.cache import CachedJudge, JudgeCache
from labeling.chain import FallbackChain
from labeling.cost import Budget, BudgetedJudge, PriceTable
from labeling.judges.anthropic_judge import AnthropicJudge, AnthropicJudgeConfig
from labeling.judges.openai_judge import OpenAIJudge, OpenAIJudgeConfig
from labeling.judges.reward_model import RewardModelJudge, RewardScorer
from labeling.judges.smollm import SmolLMJudge, SmolLMJudgeConfig
from labeling.reliability import CircuitBreaker, ReliableJudge, RetryPolicy
from labeling.rubric import Rubric
from labeling.tracing import JudgeTracer, LangfuseConfig, TracedJudge, make_tracer
from labeling.verdicts import Judge

KNOWN_JUDGES = ("openai", "anthropic", "local", "local-rm", "local-smollm2")


class ChainConfigError(ValueError):
    """The requested judges cannot be assembled (unknown name, or nothing available)."""


@dataclass
class LabelingConfig:
    judges: Sequence[str] = ("openai", "anthropic", "local")
    openai: OpenAIJudgeConfig | None = None
    anthropic: AnthropicJudgeConfig | None = None
    smollm: SmolLMJudgeConfig | None = None
    reward_scorer: RewardScorer | None = None
    reward_model_name: str = "reward-model"  # e.g. the registry version of the active reward model
    rubric: Rubric = field(default_factory=Rubric)
    prices: PriceTable = field(default_factory=PriceTable)
    budget_usd: float | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker_failure_threshold: int = 5
    breaker_reset_s: float = 30.0
    langfuse: LangfuseConfig | None = None
    skip_unavailable: bool = True

    def __post_init__(self) -> None:
        unknown = [name for name in self.judges if name not in KNOWN_JUDGES]
        if unknown:
            raise ChainConfigError(f"unknown judge(s) {unknown}; known: {', '.join(KNOWN_JUDGES)}")


@dataclass
class BuiltChain:
    """A ready chain plus the shared objects a caller reports on or closes."""

    chain: FallbackChain
    budget: Budget
    tracer: JudgeTracer
    breakers: dict[str, CircuitBreaker]
    skipped: list[str]
    base_judges: dict[str, Judge]  # unwrapped judges by name (batch APIs build requests from them)

    async def aclose(self) -> None:
        for judge in self.base_judges.values():
            close = getattr(judge, "aclose", None)
            if close is not None:
                await close()
        self.tracer.flush()


def _expand(names: Sequence[str], config: LabelingConfig) -> list[str]:
    expanded: list[str] = []
    for name in names:
        if name == "local":
            name = "local-rm" if config.reward_scorer is not None else "local-smollm2"
        if name not in expanded:
            expanded.append(name)
    return expanded


def _base_judge(name: str, config: LabelingConfig) -> Judge | None:
    if name == "openai":
        return OpenAIJudge(config.openai, rubric=config.rubric, prices=config.prices) if config.openai else None
    if name == "anthropic":
        if config.anthropic is None:
            return None
        return AnthropicJudge(config.anthropic, rubric=config.rubric, prices=config.prices)
    if name == "local-rm":
        if config.reward_scorer is None:
            return None
        return RewardModelJudge(config.reward_scorer, model=config.reward_model_name)
    if name == "local-smollm2":
        return SmolLMJudge(config.smollm, rubric=config.rubric) if config.smollm else None
    raise ChainConfigError(f"unknown judge {name!r}")


def wrap_remote(
    judge: Any,
    *,
    budget: Budget,
    tracer: JudgeTracer,
    breaker: CircuitBreaker,
    retry: RetryPolicy,
    cache: JudgeCache | None,
    temperature: float | None,
) -> Judge:
    wrapped: Judge = ReliableJudge(BudgetedJudge(TracedJudge(judge, tracer), budget), retry, breaker)
    return CachedJudge(wrapped, cache, temperature=temperature) if cache is not None else wrapped


def build_chain(
    config: LabelingConfig,
    *,
    cache: JudgeCache | None = None,
    budget: Budget | None = None,
    tracer: JudgeTracer | None = None,
) -> BuiltChain:
    """The configured chain, with one breaker per provider and one budget for all paid judges."""
    budget = budget or Budget(config.budget_usd)
    tracer = tracer or make_tracer(config.langfuse)
    breakers: dict[str, CircuitBreaker] = {}
    judges: list[Judge] = []
    base: dict[str, Judge] = {}
    skipped: list[str] = []
    for name in _expand(config.judges, config):
        judge = _base_judge(name, config)
        if judge is None:
            if not config.skip_unavailable:
                raise ChainConfigError(f"judge {name!r} is not configured")
            skipped.append(name)
            continue
        base[name] = judge
        if judge.provider == "local":
            judges.append(TracedJudge(judge, tracer))
            continue
        breaker = breakers.setdefault(
            judge.provider,
            CircuitBreaker(judge.provider, config.breaker_failure_threshold, config.breaker_reset_s),
        )
        temperature = getattr(getattr(judge, "config", None), "temperature", None)
        judges.append(
            wrap_remote(
                judge, budget=budget, tracer=tracer, breaker=breaker, retry=config.retry, cache=cache,
                temperature=temperature,
            )
        )
    if not judges:
        raise ChainConfigError(
            f"no judge available among {list(config.judges)}: configure an API key, a reward model "
            "or the local model directory"
        )
    return BuiltChain(FallbackChain(judges), budget, tracer, breakers, skipped, base)
