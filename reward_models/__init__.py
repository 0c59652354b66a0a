"""Reward models: from labeled pairs to a calibrated, batched scorer.

    labels --build_snapshot--> Snapshot --train_reward_model--> artifact dir --RewardScorer.load--> scores

- ``pairs``: the three JSONL pair formats (``read_pairs``).
- ``snapshot``: labels -> frozen, hashed training set with a deterministic split.
- ``config`` / ``recipes``: TRL RewardConfig with Arbiter's defaults; YAML recipes.
- ``training``: TRL RewardTrainer (+ optional LoRA), resumable, writes an artifact + manifest.
- ``calibration``: temperature scaling, ECE.  ``evaluation``: accuracy, ECE, length baselines.
- ``scoring``: ``RewardScorer`` (batched, length-bucketed) and ``EnsembleScorer``.
- ``mean_pooled``: a BERT reward head on mean-pooled states (``pooling: mean`` in a recipe).

Heavy dependencies (torch, transformers, TRL) are imported only by the modules that need them;
``from reward_models import read_pairs`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from .pairs import Message, PairParseError, PreferencePair, read_pairs, write_pairs
from .snapshot import (
    LabeledPair,
    Snapshot,
    SnapshotRecord,
    SnapshotRules,
    build_snapshot,
    labeled_pairs_from_preferences,
    read_snapshot,
    write_snapshot,
)

__all__ = [
    "Calibration",
    "EncodingSpec",
    "EnsembleEvaluation",
    "EnsembleScorer",
    "EvaluationReport",
    "LabeledPair",
    "Message",
    "PairParseError",
    "PreferencePair",
    "Recipe",
    "RewardDataArguments",
    "RewardModelArguments",
    "RewardModelManifest",
    "RewardScorer",
    "RewardTrainingConfig",
    "Snapshot",
    "SnapshotRecord",
    "SnapshotRules",
    "TrainingResult",
    "build_snapshot",
    "calibrate",
    "evaluate_ensemble",
    "evaluate_file",
    "evaluate_pairs",
    "labeled_pairs_from_preferences",
    "load_recipe",
    "load_scorer",
    "read_manifest",
    "read_pairs",
    "read_snapshot",
    "train_reward_model",
    "write_pairs",
    "write_snapshot",
]

# name -> submodule, imported on first use so that importing the package does not load torch/TRL.
_LAZY = {
    "Calibration": "calibration",
    "calibrate": "calibration",
    "EncodingSpec": "encoding",
    "EvaluationReport": "evaluation",
    "EnsembleEvaluation": "evaluation",
    "evaluate_ensemble": "evaluation",
    "evaluate_file": "evaluation",
    "evaluate_pairs": "evaluation",
    "RewardModelManifest": "artifacts",
    "read_manifest": "artifacts",
    "EnsembleScorer": "scoring",
    "RewardScorer": "scoring",
    "load_scorer": "scoring",
    "RewardDataArguments": "config",
    "RewardModelArguments": "config",
    "RewardTrainingConfig": "config",
    "Recipe": "recipes",
    "load_recipe": "recipes",
    "TrainingResult": "training",
    "train_reward_model": "training",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
