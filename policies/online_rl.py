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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
from trl import GRPOConfig, RLOOConfig

from policies.training import (
    DEFAULT_LORA,
    Lineage,
    LoraSpec,
    TrainingResult,
    completed_run,
    data_hash,
    finish_run,
    last_checkpoint,
    load_model_and_tokenizer,
    start_manifest,
    trainer_args_summary,
    write_manifest,
)

logger = logging.getLogger(__name__)

RewardScorer = Callable[[list[str], list[str]], Sequence[float] | np.ndarray]
_RECORDED_ARGS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                  "gradient_accumulation_steps", "beta", "num_generations", "max_completion_length", "temperature",
                  "seed", "loss_type", "epsilon")

_CPU_DEFAULTS = {
    "learning_rate": (1e-4, "AdamW learning rate for the LoRA adapter."),
    "beta": (0.04, "KL penalty towards the reference policy (0 disables it and skips the reference pass)."),
    "num_generations": (4, "Answers sampled per prompt (the group the advantage is computed in)."),
    "max_completion_length": (64, "Maximum tokens per sampled answer."),
    "per_device_train_batch_size": (4, "Sampled answers per step; must be a multiple of num_generations."),
    # transformers 5 renamed gradient_checkpointing (TRL defaults it to True); setting the new name wins silently.
    "activation_checkpointing": (False, "Off: recomputation costs time; memory is not the bottleneck on CPU."),
    "bf16": (False, "fp32 on CPU."),
    "logging_steps": (1, "Log every step (online RL runs are short and noisy)."),
    "save_strategy": ("steps", "Checkpoint during training so a crash can resume."),
    "save_steps": (25, "Checkpoint every N steps."),
    "save_total_limit": (2, "Keep only the newest checkpoints."),
    "report_to": ("none", "No external trackers by default."),
    "dataloader_pin_memory": (False, "Pinned memory only helps GPU transfers."),
}


def _cpu_field(name: str):
    default, help_text = _CPU_DEFAULTS[name]
    return field(default=default, metadata={"help": help_text})


@dataclass
class PolicyGRPOConfig(GRPOConfig):
    """TRL's GRPOConfig with a KL penalty on by default and CPU-sized defaults."""

    output_dir: str | None = field(default=None, metadata={"help": "Set by train_online_rl."})
    learning_rate: float = _cpu_field("learning_rate")
    beta: float = _cpu_field("beta")
    num_generations: int | None = _cpu_field("num_generations")
    max_completion_length: int | None = _cpu_field("max_completion_length")
    per_device_train_batch_size: int = _cpu_field("per_device_train_batch_size")
    activation_checkpointing: bool | None = _cpu_field("activation_checkpointing")
    bf16: bool | None = _cpu_field("bf16")
    logging_steps: float = _cpu_field("logging_steps")
    save_strategy: str = _cpu_field("save_strategy")
    save_steps: float = _cpu_field("save_steps")
    save_total_limit: int | None = _cpu_field("save_total_limit")
    report_to: str | list[str] | None = _cpu_field("report_to")
    dataloader_pin_memory: bool = _cpu_field("dataloader_pin_memory")

    def __post_init__(self):
        _check_rl(self)
        super().__post_init__()


@dataclass
class PolicyRLOOConfig(RLOOConfig):
    """TRL's RLOOConfig with CPU-sized defaults (RLOO's KL penalty is on by default)."""

    output_dir: str | None = field(default=None, metadata={"help": "Set by train_online_rl."})
    learning_rate: float = _cpu_field("learning_rate")
    beta: float = _cpu_field("beta")
    num_generations: int | None = _cpu_field("num_generations")
    max_completion_length: int | None = _cpu_field("max_completion_length")
    per_device_train_batch_size: int = _cpu_field("per_device_train_batch_size")
    activation_checkpointing: bool | None = _cpu_field("activation_checkpointing")
    bf16: bool | None = _cpu_field("bf16")
    logging_steps: float = _cpu_field("logging_steps")
    save_strategy: str = _cpu_field("save_strategy")
    save_steps: float = _cpu_field("save_steps")
    save_total_limit: int | None = _cpu_field("save_total_limit")
    report_to: str | list[str] | None = _cpu_field("report_to")
    dataloader_pin_memory: bool = _cpu_field("dataloader_pin_memory")

    def __post_init__(self):
        _check_rl(self)
        super().__post_init__()


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
    from datasets import Dataset
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
    output_dir = Path(output_dir)
    lineage = replace(lineage, method=algorithm, data_hash=data_hash(rows))
    done = completed_run(output_dir, lineage.data_hash)
    if done is not None:
        logger.info("%s run in %s already completed for these prompts; skipping", algorithm, output_dir)
        return TrainingResult(output_dir, done, done.get("metrics", {}), skipped=True)

    config.output_dir = str(output_dir)
    model, tokenizer = load_model_and_tokenizer(base_model, model, tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    peft_config = lora.to_peft(model.config.num_hidden_layers) if lora else None
    resume = last_checkpoint(output_dir)
    manifest = start_manifest(lineage, trainer_args_summary(config, _RECORDED_ARGS),
                              {"method": algorithm, "prompts": len(rows), "lora": lora.__dict__ if lora else None})
    write_manifest(output_dir, manifest)

    trainer_cls = GRPOTrainer if algorithm == "grpo" else RLOOTrainer
    started = time.time()
    trainer = trainer_cls(
        model=model,
        reward_funcs=reward if isinstance(reward, ScorerReward) else ScorerReward(reward),
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    output = trainer.train(resume_from_checkpoint=resume)
    return finish_run(trainer, output_dir, manifest, output, started, resume)
