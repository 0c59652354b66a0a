"""The skeleton every policy training run shares: lineage, seed, resume, manifest.

A run writes into one output directory:

- ``checkpoint-*/``: TRL/transformers checkpoints (resume picks up the last one after a crash);
- the final model: a LoRA adapter (or full weights) + tokenizer, loadable by ``TransformersBackend.load``;
- ``manifest.json``: what was trained from what (:class:`Lineage`), the arguments, metrics, library versions,
  timings, and ``status``. A directory whose manifest says ``completed`` for the same data is returned as is,
  so re-running a finished job never trains twice.

LoRA settings live in :class:`LoraSpec`; ``top_layers`` restricts the adapters to the last N transformer blocks,
which on a CPU is the biggest saving there is: backpropagation stops at the lowest adapted block.

Not here: the algorithms themselves (``policies.dpo``, ``policies.online_rl``), and the registry (the app records
a PolicyVersion from the returned :class:`TrainingResult`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "arbiter-policy/1"


@dataclass(frozen=True)
class Lineage:
    """Where a policy comes from; stored in the manifest and copied onto the PolicyVersion row."""

    base_model: str  # path (or name) of the model the run started from
    decision_type: str
    method: str = ""  # "dpo" | "grpo" | "rloo" (filled in by the trainer)
    reward_model_id: str | None = None
    snapshot_hash: str | None = None  # the DatasetSnapshot the pairs / prompts came from
    parent_policy_id: str | None = None
    data_hash: str | None = None  # sha256 of the training rows actually used (filled in by the trainer)


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter settings (PEFT). ``top_layers=None`` adapts every block."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    top_layers: int | None = None

    def __post_init__(self):
        if self.r < 1 or self.alpha < 1:
            raise ValueError("LoRA r and alpha must be >= 1")
        if self.top_layers is not None and self.top_layers < 1:
            raise ValueError("top_layers must be >= 1 (or None for all layers)")

    def to_peft(self, num_layers: int):
        from peft import LoraConfig

        layers = None
        if self.top_layers is not None:
            layers = list(range(max(0, num_layers - self.top_layers), num_layers))
        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules),
            layers_to_transform=layers,
            task_type="CAUSAL_LM",
        )


DEFAULT_LORA = LoraSpec()


@dataclass
class TrainingResult:
    output_dir: Path
    manifest: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    resumed_from: str | None = None
    skipped: bool = False  # True when a completed run for the same data was found


@dataclass
class CpuTrainingDefaults:
    """The defaults every policy training config shares (DPO, GRPO, RLOO); mixed in before TRL's config so they win."""

    save_strategy: str = field(default="steps", metadata={"help": "Checkpoint during training so a crash can resume."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep only the newest checkpoints."})
    report_to: str | list[str] | None = field(default="none", metadata={"help": "No external trackers by default."})
    dataloader_pin_memory: bool = field(default=False, metadata={"help": "Pinned memory only helps GPU transfers."})


def data_hash(rows: Iterable[Any]) -> str:
    """Stable sha256 of the training rows (JSON, sorted keys): the run's data identity."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def completed_run(output_dir: Path, expected_data_hash: str) -> dict[str, Any] | None:
    """The manifest of a finished run on the same data in ``output_dir``, else None."""
    path = Path(output_dir) / MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("status") == "completed" and manifest.get("lineage", {}).get("data_hash") == expected_data_hash:
        return manifest
    return None


def last_checkpoint(output_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    output_dir = Path(output_dir)
    return get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None


def write_manifest(output_dir: Path, manifest: dict[str, Any]) -> None:
    """Write atomically (tmp + rename) so a crash never leaves a half-written manifest."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tmp = output_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    tmp.replace(output_dir / MANIFEST)


def start_manifest(lineage: Lineage, args: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    import peft
    import torch
    import transformers
    import trl

    return {
        "format": MANIFEST_FORMAT,
        "status": "running",
        "lineage": asdict(lineage),
        "args": args,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": {"trl": trl.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
                     "torch": torch.__version__, "python": platform.python_version()},
        **(extra or {}),
    }


def trainer_args_summary(config: Any, keys: Iterable[str]) -> dict[str, Any]:
    """The training arguments worth recording (the full TrainingArguments dump is hundreds of keys)."""
    return {k: getattr(config, k) for k in keys if hasattr(config, k)}


def run_trainer(trainer_cls: Any, rows: list[dict[str, Any]], *, config: Any, model: Any, tokenizer: Any,
                peft_config: Any, callbacks: list | None, output_dir: Path, manifest: dict[str, Any],
                resume: str | None, **trainer_kwargs: Any) -> TrainingResult:
    """Build the TRL trainer on ``rows``, train (from ``resume`` when given) and finish the run (``finish_run``)."""
    from datasets import Dataset

    started = time.time()
    trainer = trainer_cls(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
        **trainer_kwargs,
    )
    output = trainer.train(resume_from_checkpoint=resume)
    return finish_run(trainer, output_dir, manifest, output, started, resume)


def finish_run(trainer: Any, output_dir: Path, manifest: dict[str, Any], train_output: Any,
               started: float, resumed_from: str | None) -> TrainingResult:
    """Save model + tokenizer + metrics + state, and mark the manifest completed."""
    output_dir = Path(output_dir)
    trainer.save_model(str(output_dir))
    metrics = {k: float(v) for k, v in (train_output.metrics or {}).items() if isinstance(v, int | float)}
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    manifest.update(
        status="completed",
        finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        wall_seconds=round(time.time() - started, 2),
        metrics=metrics,
        resumed_from=resumed_from,
        adapter=(output_dir / "adapter_config.json").exists(),
        log_history=trainer.state.log_history[-50:],
    )
    write_manifest(output_dir, manifest)
    logger.info("training finished in %.1fs: %s", manifest["wall_seconds"], metrics)
    return TrainingResult(output_dir, manifest, metrics, resumed_from)


def begin_run(rows: list[Any], output_dir: str | Path, lineage: Lineage, method: str
              ) -> tuple[Path, Lineage, TrainingResult | None]:
    """The run's directory and lineage (method, data hash), and the result of a run already completed on this data."""
    output_dir = Path(output_dir)
    lineage = replace(lineage, method=method, data_hash=data_hash(rows))
    done = completed_run(output_dir, lineage.data_hash)
    if done is not None:
        logger.info("%s run in %s already completed for this data; skipping", method, output_dir)
        return output_dir, lineage, TrainingResult(output_dir, done, done.get("metrics", {}), skipped=True)
    return output_dir, lineage, None


def prepare_run(config: Any, output_dir: Path, lineage: Lineage, recorded_args: Iterable[str], extra: dict[str, Any],
                *, base_model: str | Path, lora: LoraSpec | None, model=None, tokenizer=None):
    """Load the model, the LoRA config and the checkpoint to resume from, and write the running manifest.

    Returns ``(model, tokenizer, peft_config, resume, manifest)``.
    """
    config.output_dir = str(output_dir)  # the run's directory is an argument of the run, not of the recipe
    model, tokenizer = load_model_and_tokenizer(base_model, model, tokenizer)
    peft_config = lora.to_peft(model.config.num_hidden_layers) if lora else None
    resume = last_checkpoint(output_dir)
    manifest = start_manifest(lineage, trainer_args_summary(config, recorded_args),
                              {**extra, "lora": lora.__dict__ if lora else None})
    write_manifest(output_dir, manifest)
    return model, tokenizer, peft_config, resume, manifest


def load_model_and_tokenizer(base_model: str | Path, model=None, tokenizer=None):
    """An explicit (model, tokenizer) pair wins; otherwise both load from ``base_model`` in float32."""
    if model is not None and tokenizer is not None:
        return model, tokenizer
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(base_model)
    if not path.is_dir():
        raise FileNotFoundError(f"base model directory not found: {path} (no model hub: pass a local checkpoint)")
    model = model or AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
    return model, tokenizer
