"""The on-disk layout of a trained reward model and its manifest.

An artifact directory holds::

    manifest.json        base model, snapshot hash, hyperparameters, metrics, calibration, encoding
    model/               a plain HF sequence-classification model + tokenizer (LoRA merged in)
    checkpoint-*/        Trainer checkpoints while training runs (for resuming); removed at the end
    train_results.json, trainer_state.json, hyperparameters.json

``model/`` loads with ``AutoModelForSequenceClassification.from_pretrained`` alone: no PEFT, no
Arbiter code. The manifest is what the scorer needs besides the weights (the encoding spec and
the calibration temperature) and what the registry records. This module only reads and writes
files; it does not load models.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_FILE", "MODEL_SUBDIR", "RewardModelManifest", "is_artifact", "read_manifest", "write_manifest"]

MANIFEST_FILE = "manifest.json"
MODEL_SUBDIR = "model"
MANIFEST_VERSION = 1


@dataclass
class RewardModelManifest:
    """What a reward model is: where it came from, how it was trained, how well it does."""

    name: str
    base_model: str
    snapshot_hash: str | None
    encoding: dict[str, Any]
    hyperparameters: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    temperature: float = 1.0
    created_at: str = ""
    version: int = MANIFEST_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> RewardModelManifest:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in obj.items() if k in known})


def write_manifest(directory: str | Path, manifest: RewardModelManifest) -> Path:
    path = Path(directory) / MANIFEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a half-written manifest that looks finished.
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_manifest(directory: str | Path) -> RewardModelManifest:
    path = Path(directory) / MANIFEST_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a reward model artifact: {MANIFEST_FILE} is missing")
    return RewardModelManifest.from_dict(json.loads(path.read_text(encoding="utf-8")))


def is_artifact(directory: str | Path) -> bool:
    d = Path(directory)
    return (d / MANIFEST_FILE).exists() and (d / MODEL_SUBDIR / "config.json").exists()
