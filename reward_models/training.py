"""Training a reward model on a snapshot with TRL's RewardTrainer (optionally through LoRA).

Every run has the same skeleton: seed, log the arguments, resume from the last checkpoint in the
output directory, train, save metrics + state + model, then calibrate on the snapshot's
validation split and write the manifest. A run whose output directory already holds a finished
artifact with the same snapshot and hyperparameters returns it without training again, so a
scheduler can simply re-run a crashed job.

The loss is TRL's Bradley-Terry loss, -log sigmoid(r_chosen - r_rejected - margin), where the
optional margin is ``margin_scale x label confidence`` and ties enter in both orders with margin
0. Text is tokenized here (``reward_models.encoding``: prompts truncated from the left) rather
than by TRL, which would drop over-long pairs instead of truncating them.

This module does not build snapshots, touch the registry or read the environment.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from trl import RewardTrainer

from . import local_models
from .artifacts import MODEL_SUBDIR, RewardModelManifest, is_artifact, read_manifest, write_manifest
from .calibration import calibrate
from .config import RewardDataArguments, RewardModelArguments, RewardTrainingConfig
from .encoding import EncodingSpec, encode, marker_id, prepare_tokenizer
from .evaluation import evaluate_rewards
from .mean_pooled import load_mean_pooled
from .scoring import RewardScorer, length_batches, pad_batch
from .snapshot import Snapshot, SnapshotRecord

__all__ = ["RewardRun", "TrainingResult", "build_preference_dataset", "build_trainer", "resolve_model_path", "run_hyperparameters", "train_reward_model"]

logger = logging.getLogger(__name__)

# Training-argument fields that define a run (and so go into the manifest / the resume check).
_RUN_FIELDS = (
    "learning_rate",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "warmup_steps",
    "weight_decay",
    "lr_scheduler_type",
    "max_length",
    "center_rewards_coefficient",
    "seed",
    "bf16",
    "activation_checkpointing",
    "train_sampling_strategy",
    "optim",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
)


@dataclass(frozen=True)
class TrainingResult:
    artifact_dir: Path
    manifest: RewardModelManifest
    resumed_from: str | None = None
    reused: bool = False


def resolve_model_path(name_or_path: str, models_dir: str | Path = local_models.DEFAULT_MODELS_DIR) -> Path:
    """'minilm' / 'smollm2' -> the packaged models; anything else must be a local model directory."""
    aliases = {"minilm": lambda: local_models.minilm_dir(), "smollm2": lambda: local_models.smollm2_dir(models_dir)}
    if name_or_path.lower() in aliases:
        return aliases[name_or_path.lower()]()
    path = Path(name_or_path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(
            f"model {name_or_path!r} is neither 'minilm', 'smollm2' nor a local model directory with config.json "
            "(there is no model hub here)"
        )
    return path


def build_preference_dataset(
    records: Sequence[SnapshotRecord], tokenizer, encoding: EncodingSpec, margin_scale: float = 0.0
) -> Dataset:
    """Pre-tokenized pairs (``chosen_ids``, ``rejected_ids``, ``length``, optional ``margin``) for TRL."""
    rows: dict[str, list] = {"chosen_ids": [], "rejected_ids": [], "length": [], "margin": []}
    for r in records:
        a = encode(tokenizer, encoding, r.prompt, r.chosen)
        b = encode(tokenizer, encoding, r.prompt, r.rejected)
        # A tie is the same pair in both orders with margin 0: the two losses pull r_a and r_b together.
        orders = [(a, b), (b, a)] if r.tie else [(a, b)]
        for first, second in orders:
            rows["chosen_ids"].append(first)
            rows["rejected_ids"].append(second)
            rows["length"].append(max(len(first), len(second)))
            rows["margin"].append(0.0 if r.tie else margin_scale * r.confidence)
    if not rows["chosen_ids"]:
        raise ValueError("no training pairs: the snapshot's training split is empty")
    if margin_scale == 0.0 and not any(r.tie for r in records):
        del rows["margin"]  # no column -> TRL's plain Bradley-Terry loss
    return Dataset.from_dict(rows)


def _transformer_layers(model) -> torch.nn.ModuleList:
    n = model.config.get_text_config().num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"cannot find the {n} transformer layers of {type(model).__name__} to freeze")


def _freeze_bottom(model, n_layers: int) -> None:
    layers = _transformer_layers(model)
    for p in model.get_input_embeddings().parameters():
        p.requires_grad_(False)
    for layer in layers[:n_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)


def _response_marker(tokenizer) -> str:
    """The special token that marks where a response starts: the tokenizer's BOS (SmolLM2: <|im_start|>)."""
    bos = tokenizer.bos_token
    if bos is None or bos in (tokenizer.eos_token, tokenizer.pad_token):
        raise ValueError(f"pooling 'mean' on a decoder needs a BOS token distinct from EOS and padding to mark the response; "
                         f"{type(tokenizer).__name__} has bos={bos!r}")
    return bos


def pooled_features(model, sequences: list[list[int]], pad_id: int, batch_size: int = 16, max_batch_tokens: int = 8192) -> torch.Tensor:
    """``model.pooled`` of every token sequence (float32, in input order), batched by length, no gradients."""
    from tqdm.auto import tqdm

    out = torch.empty((len(sequences), model.config.hidden_size))
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        batches = length_batches([len(s) for s in sequences], batch_size, max_batch_tokens)
        for batch in tqdm(batches, desc="linear probe: features", unit="batch"):
            out[batch] = model.pooled(*pad_batch(sequences, batch, pad_id)).float()
    model.train(was_training)
    return out


def fit_bradley_terry_probe(chosen: torch.Tensor, rejected: torch.Tensor, l2: float, max_iter: int = 500) -> torch.Tensor:
    """Weights w minimising mean(softplus(-(w . (chosen - rejected)))) + l2/2 |w * scale|^2.

    Bradley-Terry logistic regression without intercept (a shared offset cancels in a pair),
    solved by L-BFGS on feature differences standardised by their spread, so ``l2`` means the
    same whatever the features' scale. Returns w for the unstandardised features.
    """
    diff = (chosen - rejected).double()
    scale = diff.std(dim=0).clamp(min=1e-6)
    z = diff / scale
    w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([w], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.softplus(-(z @ w)).mean() + 0.5 * l2 * (w @ w)
        loss.backward()
        return loss

    optimizer.step(closure)
    return (w.detach() / scale).float()


def fit_linear_head(model, dataset, pad_id: int, l2: float) -> float:
    """Linear probing: set ``model.score`` to the Bradley-Terry probe on the frozen pooled features.

    Returns the probe's accuracy on the pairs it was fitted on. Fine-tuning then starts from a head
    that already ranks the pairs, instead of a random one that first drags the features around
    (linear probing then fine-tuning, Kumar et al. 2022).
    """
    chosen = pooled_features(model, list(dataset["chosen_ids"]), pad_id)
    rejected = pooled_features(model, list(dataset["rejected_ids"]), pad_id)
    w = fit_bradley_terry_probe(chosen, rejected, l2)
    with torch.no_grad():
        model.score.weight.copy_(w.unsqueeze(0))
        if model.score.bias is not None:
            model.score.bias.zero_()
    accuracy = float(((chosen - rejected) @ w > 0).float().mean())
    logger.info("linear probe on %d pairs: training accuracy %.3f", len(chosen), accuracy)
    return accuracy


def _head_name(model) -> str:
    for name in ("score", "classifier"):
        if hasattr(model, name):
            return name
    raise ValueError(f"{type(model).__name__} has no 'score' or 'classifier' head")


def run_hyperparameters(model_args, data_args, training_args) -> dict:
    """What defines a run (model, data and training options; not where it is written), as plain JSON."""
    hp = {"model": asdict(model_args), "data": asdict(data_args)}
    hp["training"] = {k: getattr(training_args, k) for k in _RUN_FIELDS}
    return json.loads(json.dumps(hp, default=str))  # plain JSON types, comparable after a round trip


@dataclass
class RewardRun:
    """Everything a training run needs, ready to ``trainer.train()``."""

    trainer: RewardTrainer
    tokenizer: object
    encoding: EncodingSpec
    model_path: Path
    n_train_pairs: int
    probe_accuracy: float | None = None  # head_init 'linear_probe': the probe's accuracy on the training pairs


def build_trainer(
    snapshot: Snapshot,
    model_args: RewardModelArguments,
    data_args: RewardDataArguments,
    training_args: RewardTrainingConfig,
    *,
    models_dir: str | Path = local_models.DEFAULT_MODELS_DIR,
    callbacks: list | None = None,
) -> RewardRun:
    """Load the model and tokenizer, tokenize the snapshot and set up TRL's RewardTrainer."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_path = resolve_model_path(model_args.model_name_or_path, models_dir)
    probe_accuracy = None
    tokenizer = prepare_tokenizer(AutoTokenizer.from_pretrained(model_path))
    # A decoder that pools its response's tokens needs a marker between prompt and response.
    marker = _response_marker(tokenizer) if model_args.pooling == "mean" and tokenizer.cls_token_id is None else None
    encoding = EncodingSpec(
        training_args.max_length, min(data_args.max_response_tokens, training_args.max_length - 4), response_marker=marker
    )
    train_records = snapshot.train[: data_args.max_train_pairs] if data_args.max_train_pairs else snapshot.train
    train_dataset = build_preference_dataset(train_records, tokenizer, encoding, data_args.margin_scale)

    # Weights stay float32 (the optimizer's master copy); bf16 is mixed precision via the Trainer.
    if model_args.pooling == "mean":
        model = load_mean_pooled(
            model_path,
            num_labels=1,
            keep_layers=model_args.keep_layers,
            response_start_token_id=marker_id(tokenizer, marker) if marker else None,
            dtype=torch.float32,
        )
        if model_args.head_init == "linear_probe":
            probe_accuracy = fit_linear_head(model, train_dataset, tokenizer.pad_token_id, model_args.probe_l2)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=1, dtype=torch.float32)
    n_layers = len(_transformer_layers(model))
    if model_args.freeze_bottom_layers >= n_layers:
        raise ValueError(f"freeze_bottom_layers={model_args.freeze_bottom_layers} but the model has {n_layers} layers")
    peft_config = None
    if model_args.use_peft:
        from peft import LoraConfig, TaskType

        peft_config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=model_args.lora_r,
            lora_alpha=model_args.lora_alpha,
            lora_dropout=model_args.lora_dropout,
            target_modules=model_args.lora_target_modules,
            # Adapters only above the frozen layers, so backpropagation can stop there too.
            layers_to_transform=list(range(model_args.freeze_bottom_layers, n_layers))
            if model_args.freeze_bottom_layers
            else None,
            # The freshly initialised reward head must be trained in full, not through adapters.
            modules_to_save=[_head_name(model)],
        )
    elif model_args.freeze_bottom_layers:
        _freeze_bottom(model, model_args.freeze_bottom_layers)

    trainer = _LengthGroupedRewardTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
    )
    return RewardRun(trainer, tokenizer, encoding, Path(model_path), len(train_records), probe_accuracy)


def train_reward_model(
    snapshot: Snapshot,
    model_args: RewardModelArguments | None = None,
    data_args: RewardDataArguments | None = None,
    training_args: RewardTrainingConfig | None = None,
    *,
    name: str | None = None,
    models_dir: str | Path = local_models.DEFAULT_MODELS_DIR,
    callbacks: list | None = None,
) -> TrainingResult:
    """Train, calibrate and save a reward model into ``training_args.output_dir``.

    Example:
        >>> snap = build_snapshot(labeled_pairs_from_preferences(read_pairs("pairs.jsonl")))  # doctest: +SKIP
        >>> result = train_reward_model(snap, RewardModelArguments("minilm"),                  # doctest: +SKIP
        ...                             training_args=RewardTrainingConfig(output_dir="var/rm/x"))
        >>> RewardScorer.load(result.artifact_dir).score(["Hi"], ["Hello!"])                   # doctest: +SKIP
    """
    from transformers import set_seed
    from transformers.trainer_utils import get_last_checkpoint

    model_args = model_args or RewardModelArguments()
    data_args = data_args or RewardDataArguments()
    training_args = training_args or RewardTrainingConfig()
    out = Path(training_args.output_dir)
    hyperparameters = run_hyperparameters(model_args, data_args, training_args)

    # 0. A finished run with the same inputs is reused; a different finished run is never overwritten.
    if is_artifact(out):
        done = read_manifest(out)
        if done.snapshot_hash == snapshot.content_hash and done.hyperparameters == hyperparameters:
            logger.info("reusing the finished reward model in %s", out)
            return TrainingResult(out, done, reused=True)
        raise FileExistsError(f"{out} already holds a different finished reward model; choose another output_dir")

    # 1. Seed and log the arguments.
    set_seed(training_args.seed)
    logger.info("reward model training: %s", json.dumps(hyperparameters))
    out.mkdir(parents=True, exist_ok=True)
    (out / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2) + "\n", encoding="utf-8")

    # 2. Model, tokenizer, data, trainer.
    # The clock includes tokenizing and, with head_init 'linear_probe', the probe's feature pass.
    start = time.perf_counter()
    run = build_trainer(snapshot, model_args, data_args, training_args, models_dir=models_dir, callbacks=callbacks)
    trainer, tokenizer, encoding = run.trainer, run.tokenizer, run.encoding

    # 3. Resume from the last checkpoint, train.
    last = get_last_checkpoint(str(out)) if out.exists() else None
    if last:
        logger.info("resuming from %s", last)
    train_result = trainer.train(resume_from_checkpoint=last)
    train_seconds = time.perf_counter() - start

    # 4. Save metrics, state and the (merged) model.
    # TRL mixes its last logging window (accuracy, margin, rewards) into these; prefix them all
    # so nobody mistakes a training-batch accuracy for the validation accuracy.
    metrics = {k if k.startswith("train_") else f"train_{k}": v for k, v in train_result.metrics.items()}
    metrics["train_wall_seconds"] = train_seconds
    metrics["train_pairs"] = run.n_train_pairs
    if run.probe_accuracy is not None:
        metrics["train_probe_accuracy"] = run.probe_accuracy
    trainer.save_metrics("train", metrics)
    trainer.save_state()
    # Under `accelerate launch` every process trains; only the main one writes the artifact.
    trainer.accelerator.wait_for_everyone()
    if not trainer.is_world_process_zero():
        return TrainingResult(out, RewardModelManifest("", "", snapshot.content_hash, {}, hyperparameters), resumed_from=last)
    final = trainer.model
    if model_args.use_peft:
        final = final.merge_and_unload()
    final.config.get_text_config().pad_token_id = tokenizer.pad_token_id
    final.save_pretrained(out / MODEL_SUBDIR)
    tokenizer.save_pretrained(out / MODEL_SUBDIR)

    # 5. Calibrate and evaluate on the validation split.
    scorer = RewardScorer(final, tokenizer, encoding, batch_size=training_args.per_device_eval_batch_size * 2)
    calibration, validation = {}, {}
    temperature = 1.0
    val = [r for r in snapshot.validation if not r.tie]
    if val:
        rc, rr = scorer.score_pairs([r.prompt for r in val], [r.chosen for r in val], [r.rejected for r in val])
        cal = calibrate(rc.astype(np.float64) - rr)
        temperature = cal.temperature
        calibration = cal.to_dict()
        report = evaluate_rewards(rc, rr, [len(r.chosen) for r in val], [len(r.rejected) for r in val], temperature)
        validation = {f"validation_{k}": v for k, v in report.to_dict().items()}

    manifest = RewardModelManifest(
        name=name or f"{run.model_path.name}-{snapshot.content_hash[:8]}",
        base_model=str(model_args.model_name_or_path),
        snapshot_hash=snapshot.content_hash,
        encoding=encoding.to_dict(),
        hyperparameters=hyperparameters,
        # Validation figures first: they are what a reader of the registry looks for.
        metrics={**validation, **{k: v for k, v in metrics.items() if isinstance(v, (int, float))}},
        calibration=calibration,
        temperature=temperature,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    # The manifest is written last: its presence marks the artifact finished. Checkpoints are
    # only needed to resume an unfinished run.
    write_manifest(out, manifest)
    for ckpt in out.glob("checkpoint-*"):
        shutil.rmtree(ckpt, ignore_errors=True)
    return TrainingResult(out, manifest, resumed_from=last)


class _LengthGroupedRewardTrainer(RewardTrainer):
    """RewardTrainer that keeps the ``length`` column so length-grouped sampling can use it.

    Trainer drops columns the model does not take before it builds the sampler; TRL keeps only
    ``chosen_ids``/``rejected_ids``/``margin``. Without ``length`` the length-grouped sampler would
    look for ``input_ids`` and fail. The collator ignores the extra key.
    """

    def _set_signature_columns_if_needed(self):
        if self._signature_columns is None:
            self._signature_columns = ["chosen_ids", "rejected_ids", "margin", "length"]
