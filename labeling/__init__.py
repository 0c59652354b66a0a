"""Preference labeling: LLM and local judges with position-bias control, fallback, budgets,
caching, batch APIs and tracing (plus, in `labeling.argilla`, human annotation).

Typical use:

    built = build_chain(LabelingConfig(judges=["openai", "anthropic", "local"], openai=..., smollm=...))
    report = await label_comparisons(comparisons, built.chain, concurrency=8, on_result=store)

Heavy dependencies (torch, transformers) load only when a local judge is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # for type checkers and readers; at run time the names below load on first use
    from labeling.cache import CachedJudge, InMemoryJudgeCache, JudgeCache, cache_key
    from labeling.chain import FallbackChain
    from labeling.cost import DEFAULT_PRICES, Budget, BudgetedJudge, ModelPrice, PriceTable, PricingError
    from labeling.evaluation import (
        JudgeEvaluation,
        comparisons_from_pairs,
        evaluate_chain,
        evaluate_judge_on_file,
        load_human_comparisons,
    )
    from labeling.factory import BuiltChain, ChainConfigError, LabelingConfig, build_chain
    from labeling.judges import (
        AnthropicJudge,
        AnthropicJudgeConfig,
        OpenAIJudge,
        OpenAIJudgeConfig,
        RewardModelJudge,
        RewardScorer,
        SmolLMJudge,
        SmolLMJudgeConfig,
    )
    from labeling.pairwise import combine_orders, judge_both_orders
    from labeling.reliability import CircuitBreaker, ReliableJudge, RetryPolicy
    from labeling.rubric import DEFAULT_RUBRIC_TEXT, Rubric
    from labeling.runner import JudgeStats, LabelingReport, label_comparisons, summarize
    from labeling.tracing import (
        JudgeTracer,
        LangfuseConfig,
        LangfuseTracer,
        NoopTracer,
        TracedJudge,
        make_tracer,
    )
    from labeling.verdicts import (
        Comparison,
        Judge,
        JudgeFailure,
        JudgeRequest,
        JudgeResult,
        Label,
        LabelFailure,
        LabelResult,
        Verdict,
    )

__all__ = [
    "DEFAULT_PRICES",
    "DEFAULT_RUBRIC_TEXT",
    "AnthropicJudge",
    "AnthropicJudgeConfig",
    "Budget",
    "BudgetedJudge",
    "BuiltChain",
    "CachedJudge",
    "ChainConfigError",
    "CircuitBreaker",
    "Comparison",
    "FallbackChain",
    "InMemoryJudgeCache",
    "Judge",
    "JudgeCache",
    "JudgeEvaluation",
    "JudgeFailure",
    "JudgeRequest",
    "JudgeResult",
    "JudgeStats",
    "JudgeTracer",
    "Label",
    "LabelFailure",
    "LabelResult",
    "LabelingConfig",
    "LabelingReport",
    "LangfuseConfig",
    "LangfuseTracer",
    "ModelPrice",
    "NoopTracer",
    "OpenAIJudge",
    "OpenAIJudgeConfig",
    "PriceTable",
    "PricingError",
    "ReliableJudge",
    "RetryPolicy",
    "RewardModelJudge",
    "RewardScorer",
    "Rubric",
    "SmolLMJudge",
    "SmolLMJudgeConfig",
    "TracedJudge",
    "Verdict",
    "build_chain",
    "cache_key",
    "combine_orders",
    "comparisons_from_pairs",
    "evaluate_chain",
    "evaluate_judge_on_file",
    "judge_both_orders",
    "label_comparisons",
    "load_human_comparisons",
    "make_tracer",
    "summarize",
]

# name -> submodule, imported on first use so that importing one light module (say ``labeling.cache``)
# does not load torch, transformers or a provider SDK through this package face.
_LAZY = {
    "CachedJudge": "cache",
    "InMemoryJudgeCache": "cache",
    "JudgeCache": "cache",
    "cache_key": "cache",
    "FallbackChain": "chain",
    "DEFAULT_PRICES": "cost",
    "Budget": "cost",
    "BudgetedJudge": "cost",
    "ModelPrice": "cost",
    "PriceTable": "cost",
    "PricingError": "cost",
    "JudgeEvaluation": "evaluation",
    "comparisons_from_pairs": "evaluation",
    "evaluate_chain": "evaluation",
    "evaluate_judge_on_file": "evaluation",
    "load_human_comparisons": "evaluation",
    "BuiltChain": "factory",
    "ChainConfigError": "factory",
    "LabelingConfig": "factory",
    "build_chain": "factory",
    "AnthropicJudge": "judges",
    "AnthropicJudgeConfig": "judges",
    "OpenAIJudge": "judges",
    "OpenAIJudgeConfig": "judges",
    "RewardModelJudge": "judges",
    "RewardScorer": "judges",
    "SmolLMJudge": "judges",
    "SmolLMJudgeConfig": "judges",
    "combine_orders": "pairwise",
    "judge_both_orders": "pairwise",
    "CircuitBreaker": "reliability",
    "ReliableJudge": "reliability",
    "RetryPolicy": "reliability",
    "DEFAULT_RUBRIC_TEXT": "rubric",
    "Rubric": "rubric",
    "JudgeStats": "runner",
    "LabelingReport": "runner",
    "label_comparisons": "runner",
    "summarize": "runner",
    "JudgeTracer": "tracing",
    "LangfuseConfig": "tracing",
    "LangfuseTracer": "tracing",
    "NoopTracer": "tracing",
    "TracedJudge": "tracing",
    "make_tracer": "tracing",
    "Comparison": "verdicts",
    "Judge": "verdicts",
    "JudgeFailure": "verdicts",
    "JudgeRequest": "verdicts",
    "JudgeResult": "verdicts",
    "Label": "verdicts",
    "LabelFailure": "verdicts",
    "LabelResult": "verdicts",
    "Verdict": "verdicts",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
