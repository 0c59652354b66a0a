"""Training configuration: TRL's RewardConfig with Arbiter's defaults, plus model and data options.

``RewardTrainingConfig`` subclasses TRL's ``RewardConfig`` only to change defaults (a CPU-first
setup: no gradient checkpointing, bf16 only on a GPU that has it, length-grouped batches,
frequent checkpoints for resuming, no external loggers) and to validate values early. Options TRL
does not have live in two small dataclasses: ``RewardModelArguments`` (which model, LoRA) and
``RewardDataArguments`` (truncation, margins). A recipe YAML file is one flat mapping whose keys
are spread over the three (``reward_models.recipes``).

This module does not train; it only describes a training run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from trl import RewardConfig

__all__ = ["RewardDataArguments", "RewardModelArguments", "RewardTrainingConfig"]


def _gpu_has_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class RewardTrainingConfig(RewardConfig):
    """TRL ``RewardConfig`` with defaults that suit small reward models on a CPU or one GPU."""

    output_dir: str | None = field(default="var/reward_models/run", metadata={"help": "Where checkpoints and the artifact go."})
    learning_rate: float = field(default=5e-5, metadata={"help": "Peak AdamW learning rate."})
    num_train_epochs: float = field(default=2.0, metadata={"help": "Passes over the training pairs."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Pairs per step per device (2x sequences)."})
    per_device_eval_batch_size: int = field(default=16, metadata={"help": "Pairs per evaluation step per device."})
    warmup_steps: float = field(default=0.1, metadata={"help": "Warm-up; a float below 1 is a fraction of all steps."})
    max_length: int | None = field(
        default=256,
        metadata={
            "help": "Tokens per (prompt, response). Arbiter truncates to this length itself (prompt from the left), "
            "so TRL's length filter never drops a pair."
        },
    )
    # Recomputing activations costs ~30% more compute; on a CPU memory is not the bottleneck.
    activation_checkpointing: bool | None = field(default=False, metadata={"help": "Trade compute for activation memory."})
    gradient_checkpointing: bool | None = field(
        default=None, metadata={"help": "Deprecated transformers alias of activation_checkpointing."}
    )
    bf16: bool | None = field(
        default=None,
        metadata={"help": "bf16 mixed precision. Default: on for a GPU that supports it, off on CPU (slower there)."},
    )
    # Batches of similar length waste little compute on padding (TRL's reward collator pads per batch).
    train_sampling_strategy: str = field(
        default="group_by_length", metadata={"help": "'group_by_length' (default), 'random' or 'sequential'."}
    )
    logging_steps: float = field(default=5, metadata={"help": "Steps between log lines."})
    save_strategy: str = field(default="steps", metadata={"help": "When to write a resumable checkpoint."})
    save_steps: float = field(default=25, metadata={"help": "Steps between checkpoints (resume granularity)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints kept on disk."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Experiment trackers (none by default)."})

    def __post_init__(self) -> None:
        if self.bf16 is None:
            self.bf16 = _gpu_has_bf16()
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinned memory only helps copies to a GPU
        if self.max_length is None or self.max_length < 8:
            raise ValueError(f"max_length must be an integer >= 8, got {self.max_length}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.center_rewards_coefficient is not None and self.center_rewards_coefficient < 0:
            raise ValueError(f"center_rewards_coefficient must be >= 0, got {self.center_rewards_coefficient}")
        super().__post_init__()


@dataclass
class RewardModelArguments:
    """Which model to start from and whether to train it through LoRA adapters."""

    model_name_or_path: str = field(
        default="minilm",
        metadata={"help": "A local HF model directory, or 'minilm' / 'smollm2' for the packaged models."},
    )
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters (+ the reward head) instead of all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path."})
    lora_target_modules: list[str] | str = field(
        default="all-linear", metadata={"help": "Modules that get adapters; 'all-linear' for every linear layer."}
    )
    pooling: str = field(
        default="default",
        metadata={
            "help": "'default': the architecture's own sequence-classification head ([CLS] pooler for BERT, last "
            "token for decoders). 'mean': the head reads the mean of the token states: all tokens for BERT encoders "
            "(what sentence-embedding models such as all-MiniLM-L6-v2 were trained to produce), the response's "
            "tokens for Llama decoders such as SmolLM2 (reward_models/mean_pooled.py)."
        },
    )
    keep_layers: int | None = field(
        default=None,
        metadata={
            "help": "Decoders with pooling 'mean' only: keep the lowest N transformer layers and drop the rest. A "
            "middle layer is the better reward feature for a small LM, and the dropped layers cost nothing."
        },
    )
    head_init: str = field(
        default="random",
        metadata={
            "help": "'random': the reward head starts random. 'linear_probe': before training, fit the head by "
            "L2-regularised Bradley-Terry logistic regression on the frozen model's pooled features of the training "
            "pairs (linear probing, then fine-tuning); pooling 'mean' only."
        },
    )
    probe_l2: float = field(
        default=0.5,
        metadata={"help": "L2 strength of the linear probe, on standardised feature differences (head_init 'linear_probe')."},
    )
    freeze_bottom_layers: int = field(
        default=0,
        metadata={
            "help": "Freeze the embeddings and this many lowest transformer layers. Backpropagation then stops at "
            "the first trainable layer, which saves most of the backward pass on a CPU."
        },
    )

    def __post_init__(self) -> None:
        if not self.model_name_or_path:
            raise ValueError("model_name_or_path is required")
        if self.lora_r <= 0 or self.lora_alpha <= 0:
            raise ValueError(f"lora_r and lora_alpha must be positive, got {self.lora_r}, {self.lora_alpha}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.pooling not in ("default", "mean"):
            raise ValueError(f"pooling must be 'default' or 'mean', got {self.pooling!r}")
        if self.freeze_bottom_layers < 0:
            raise ValueError(f"freeze_bottom_layers must be >= 0, got {self.freeze_bottom_layers}")
        if self.keep_layers is not None and (self.keep_layers < 1 or self.pooling != "mean"):
            raise ValueError(f"keep_layers needs pooling 'mean' and must be >= 1, got {self.keep_layers} with pooling {self.pooling!r}")
        if self.head_init not in ("random", "linear_probe"):
            raise ValueError(f"head_init must be 'random' or 'linear_probe', got {self.head_init!r}")
        if self.head_init == "linear_probe" and self.pooling != "mean":
            raise ValueError("head_init 'linear_probe' needs pooling 'mean' (a head on pooled features)")
        if self.probe_l2 <= 0:
            raise ValueError(f"probe_l2 must be positive, got {self.probe_l2}")


@dataclass
class RewardDataArguments:
    """How snapshot records become training examples."""

    max_response_tokens: int = field(
        default=128, metadata={"help": "Response tokens kept (from its start); the prompt gets the rest, from its end."}
    )
    margin_scale: float = field(
        default=0.0,
        metadata={
            "help": "Bradley-Terry margin = margin_scale x label confidence: a confident label asks for a wider gap. "
            "0 disables margins (plain BT loss)."
        },
    )
    max_train_pairs: int | None = field(default=None, metadata={"help": "Use only the first N training pairs (smoke runs)."})

    def __post_init__(self) -> None:
        if self.max_response_tokens < 1:
            raise ValueError(f"max_response_tokens must be >= 1, got {self.max_response_tokens}")
        if self.margin_scale < 0:
            raise ValueError(f"margin_scale must be >= 0, got {self.margin_scale}")
        if self.max_train_pairs is not None and self.max_train_pairs < 1:
            raise ValueError(f"max_train_pairs must be >= 1, got {self.max_train_pairs}")
