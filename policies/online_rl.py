"""Online RL against a reward model with TRL's ``GRPOTrainer`` or ``RLOOTrainer`` (+ LoRA).

The policy samples several answers per prompt, the reward function scores them, and the update pushes up the
answers that beat their group's average, with a KL penalty (``beta``) towards the reference (the base model, i.e.
the policy with its adapter disabled). TRL 1.16 has no PPOTrainer; GRPO and RLOO are its online methods.

The reward function is any callable ``score(prompts, responses) -> sequence of floats`` (the registered reward
model's batched scorer, a rule, a judge); :class:`ScorerReward` adapts it to TRL's reward-function protocol.

Not here: building prompts (render them with the policy backend), the reward model itself, evaluation.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from trl import GRPOConfig, RLOOConfig

from policies import training
from policies.training import DEFAULT_LORA, CpuTrainingDefaults, Lineage, LoraSpec, TrainingResult

logger = logging.getLogger(__name__)

RewardScorer = Callable[[list[str], list[str]], Sequence[float] | np.ndarray]
_RECORDED_ARGS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                  "gradient_accumulation_steps", "beta", "num_generations", "max_completion_length", "temperature",
                  "seed", "loss_type", "epsilon")

@dataclass
class _CpuOnlineRLDefaults(CpuTrainingDefaults):
    """The CPU-sized defaults and checks GRPO and RLOO share; mixed in before TRL's config, so these defaults win."""

    output_dir: str | None = field(default=None, metadata={"help": "Set by train_online_rl."})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate for the LoRA adapter."})
    beta: float = field(
        default=0.04,
        metadata={"help": "KL penalty towards the reference policy (0 disables it and skips the reference pass)."},
    )
    num_generations: int | None = field(
        default=4, metadata={"help": "Answers sampled per prompt (the group the advantage is computed in)."}
    )
    max_completion_length: int | None = field(default=64, metadata={"help": "Maximum tokens per sampled answer."})
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "Sampled answers per step; must be a multiple of num_generations."}
    )
    # transformers 5 renamed gradient_checkpointing (TRL defaults it to True); setting the new name wins silently.
    activation_checkpointing: bool | None = field(
        default=False, metadata={"help": "Off: recomputation costs time; memory is not the bottleneck on CPU."}
    )
    bf16: bool | None = field(default=False, metadata={"help": "fp32 on CPU."})
    logging_steps: float = field(default=1, metadata={"help": "Log every step (online RL runs are short and noisy)."})
    save_steps: float = field(default=25, metadata={"help": "Checkpoint every N steps."})

    def __post_init__(self):
        _check_rl(self)
        super().__post_init__()  # TRL's config, next in the subclass's MRO


@dataclass
class PolicyGRPOConfig(_CpuOnlineRLDefaults, GRPOConfig):
    """TRL's GRPOConfig with a KL penalty on by default and CPU-sized defaults."""


@dataclass
class PolicyRLOOConfig(_CpuOnlineRLDefaults, RLOOConfig):
    """TRL's RLOOConfig with CPU-sized defaults (RLOO's KL penalty is on by default)."""


def _check_rl(config) -> None:
    if config.beta < 0:
        raise ValueError(f"beta (KL penalty) must be >= 0, got {config.beta}")
    if config.num_generations is not None and config.num_generations < 2:
        raise ValueError("num_generations must be >= 2: the advantage compares answers to the same prompt")


class ScorerReward:
    """Adapts ``score(prompts, responses)`` to TRL's reward-function call (keyword arguments, list of floats)."""

    __name__ = "reward_model"  # TRL logs rewards under the callable's name

    def __init__(self, score: RewardScorer, name: str = "reward_model"):
        self.score = score
        self.__name__ = name

    def __call__(self, prompts: list[str], completions: list[str], **kwargs) -> list[float]:
        values = [float(v) for v in np.asarray(self.score(list(prompts), list(completions)), dtype=np.float64)]
        if len(values) != len(completions):
            raise ValueError(f"reward scorer returned {len(values)} scores for {len(completions)} responses")
        if not all(math.isfinite(v) for v in values):
            raise ValueError("reward scorer returned a non-finite score")
        return values


def train_online_rl(
    prompts: Sequence[str],
    reward: RewardScorer,
    *,
    algorithm: Literal["grpo", "rloo"] = "grpo",
    base_model: str | Path,
    output_dir: str | Path,
    lineage: Lineage,
    config: PolicyGRPOConfig | PolicyRLOOConfig | None = None,
    lora: LoraSpec | None = DEFAULT_LORA,
    model=None,
    tokenizer=None,
    callbacks: list | None = None,
) -> TrainingResult:
    """Train (or resume, or skip if done) a policy by online RL on rendered ``prompts`` scored by ``reward``."""
    from trl import GRPOTrainer, RLOOTrainer

    if algorithm not in ("grpo", "rloo"):
        raise ValueError(f"algorithm must be 'grpo' or 'rloo', got {algorithm!r}")
    if not prompts:
        raise ValueError("no prompts to train on")
    expected = PolicyGRPOConfig if algorithm == "grpo" else PolicyRLOOConfig
    config = config or expected()
    if not isinstance(config, GRPOConfig if algorithm == "grpo" else RLOOConfig):
        raise TypeError(f"{algorithm} needs a {expected.__name__}, got {type(config).__name__}")
    rows = [{"prompt": p} for p in prompts]
    output_dir, lineage, done = training.begin_run(rows, output_dir, lineage, algorithm)
    if done is not None:
        return done

    model, tokenizer, peft_config, resume, manifest = training.prepare_run(
        config, output_dir, lineage, _RECORDED_ARGS, {"method": algorithm, "prompts": len(rows)},
        base_model=base_model, lora=lora, model=model, tokenizer=tokenizer,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    return training.run_trainer(
        GRPOTrainer if algorithm == "grpo" else RLOOTrainer, rows, config=config, model=model, tokenizer=tokenizer,
        peft_config=peft_config, callbacks=callbacks, output_dir=output_dir, manifest=manifest, resume=resume,
        reward_funcs=reward if isinstance(reward, ScorerReward) else ScorerReward(reward),
    )
