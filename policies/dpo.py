"""Direct preference optimisation of a policy with TRL's ``DPOTrainer`` and a LoRA adapter.

Input is a list of :class:`~policies.preference_data.DPOExample` (prompt already rendered with the policy's chat
format, plain chosen/rejected answers; TRL appends the EOS token, the same way the action scorer does). Pairs may
come from human or judge labels, or be derived from outcomes (``policies.preference_data``).

The reference model is the base model with the adapter disabled (TRL does this for PEFT models), so no second copy
of the weights is held. ``PolicyDPOConfig`` only changes TRL's defaults to ones that work on a CPU.

Not here: building pairs, evaluating the result, registering it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trl import DPOConfig

from policies import training
from policies.preference_data import DPOExample
from policies.training import DEFAULT_LORA, CpuTrainingDefaults, Lineage, LoraSpec, TrainingResult

logger = logging.getLogger(__name__)

_RECORDED_ARGS = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
                  "gradient_accumulation_steps", "beta", "loss_type", "max_length", "seed", "lr_scheduler_type",
                  "warmup_ratio", "precompute_ref_log_probs")


@dataclass
class PolicyDPOConfig(CpuTrainingDefaults, DPOConfig):
    """TRL's DPOConfig with defaults for small models on CPU (LoRA learning rate, no checkpointing, fp32)."""

    output_dir: str | None = field(default=None, metadata={"help": "Set by train_dpo from its output_dir argument."})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW learning rate (LoRA adapters take ~1e-4..1e-3)."})
    per_device_train_batch_size: int = field(default=8, metadata={"help": "Pairs per step."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Passes over the pairs."})
    max_length: int | None = field(default=512, metadata={"help": "Prompt + answer tokens kept (from the start)."})
    # transformers 5 renamed gradient_checkpointing (TRL defaults it to True); setting the new name wins silently.
    activation_checkpointing: bool | None = field(
        default=False, metadata={"help": "Off: recomputing activations costs ~30% more time; memory is not the CPU's problem."}
    )
    bf16: bool | None = field(default=False, metadata={"help": "fp32 on CPU: bf16 autocast is slower there."})
    logging_steps: float = field(default=5, metadata={"help": "Log every N steps."})
    save_steps: float = field(default=50, metadata={"help": "Checkpoint every N steps."})
    lr_scheduler_type: str = field(default="linear", metadata={"help": "Learning-rate schedule."})
    warmup_ratio: float = field(default=0.05, metadata={"help": "Fraction of steps spent warming up."})
    dataloader_num_workers: int = field(default=0, metadata={"help": "Tokenised pairs are small; no worker processes."})

    def __post_init__(self):
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0 (it scales the implicit reward), got {self.beta}")
        if self.per_device_train_batch_size < 1:
            raise ValueError("per_device_train_batch_size must be >= 1")
        super().__post_init__()


def _trainer_class():
    from trl import DPOTrainer

    class _DPOTrainer(DPOTrainer):
        """DPOTrainer that trusts reference log-probabilities already present in the dataset.

        With ``precompute_ref_log_probs=True`` TRL runs a reference pass over the whole dataset first; when the
        examples carry ``ref_chosen_logps``/``ref_rejected_logps`` (computed by the same model, tokenised the same
        way, see ``TransformersBackend``) that pass is skipped. Pinned to trl 1.16's ``_precompute_ref_logps``.
        """

        def _precompute_ref_logps(self, dataset, name, batch_size):
            if {"ref_chosen_logps", "ref_rejected_logps"} <= set(dataset.column_names):
                return dataset
            return super()._precompute_ref_logps(dataset, name, batch_size)

    return _DPOTrainer


def train_dpo(
    examples: Sequence[DPOExample],
    *,
    base_model: str | Path,
    output_dir: str | Path,
    lineage: Lineage,
    config: PolicyDPOConfig | None = None,
    lora: LoraSpec | None = DEFAULT_LORA,
    model=None,
    tokenizer=None,
    callbacks: list | None = None,
) -> TrainingResult:
    """Train (or resume, or skip if already done) a DPO policy; returns where it is and what it did.

    ``model``/``tokenizer`` may be passed instead of loading ``base_model`` (tests use a tiny model); ``lora=None``
    trains all weights. When every example carries reference log-probabilities, DPO uses them instead of running
    the reference model (they must come from ``base_model``: the caller vouches for that).
    """
    if not examples:
        raise ValueError("no preference pairs to train on")
    with_reference = sum(e.has_reference for e in examples)
    if 0 < with_reference < len(examples):
        raise ValueError(f"{with_reference} of {len(examples)} pairs carry reference log-probabilities; all or none")
    rows = [e.as_row() for e in examples]
    output_dir, lineage, done = training.begin_run(rows, output_dir, lineage, "dpo")
    if done is not None:
        return done

    config = config or PolicyDPOConfig()
    if with_reference:
        config.precompute_ref_log_probs = True  # read from the rows (see _trainer_class)
    model, tokenizer, peft_config, resume, manifest = training.prepare_run(
        config, output_dir, lineage, _RECORDED_ARGS,
        {"method": "dpo", "pairs": len(rows), "reference_logps": "given" if with_reference else "computed"},
        base_model=base_model, lora=lora, model=model, tokenizer=tokenizer,
    )
    logger.info("DPO: %d pairs, base %s, output %s, resume from %s", len(rows), lineage.base_model, output_dir, resume)

    return training.run_trainer(
        _trainer_class(), rows, config=config, model=model, tokenizer=tokenizer, peft_config=peft_config,
        callbacks=callbacks, output_dir=output_dir, manifest=manifest, resume=resume,
    )
