"""The judges themselves: OpenAI, Anthropic, a reward model and a local instruct model.

Each is a small object with one `async judge(request)` method returning a `Verdict` or a
`JudgeFailure`. Retries, budgets, caching and tracing are wrappers (see `labeling.factory`).
"""

from labeling.judges.anthropic_judge import AnthropicJudge, AnthropicJudgeConfig
from labeling.judges.errors import failure_from_sdk_error, parse_retry_after
from labeling.judges.openai_judge import OpenAIJudge, OpenAIJudgeConfig
from labeling.judges.reward_model import RewardModelJudge, RewardScorer
from labeling.judges.smollm import SmolLMJudge, SmolLMJudgeConfig

__all__ = [
    "AnthropicJudge",
    "AnthropicJudgeConfig",
    "OpenAIJudge",
    "OpenAIJudgeConfig",
    "RewardModelJudge",
    "RewardScorer",
    "SmolLMJudge",
    "SmolLMJudgeConfig",
    "failure_from_sdk_error",
    "parse_retry_after",
]
