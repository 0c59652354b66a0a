"""Recipes: one YAML file per experiment, a flat mapping spread over the three config dataclasses.

    # recipes/reward_minilm.yaml
    model_name_or_path: minilm
    learning_rate: 5.0e-5
    num_train_epochs: 2
    max_length: 256

Each key goes to whichever of ``RewardModelArguments``, ``RewardDataArguments`` or
``RewardTrainingConfig`` (TRL's RewardConfig / transformers' TrainingArguments) declares it; an
unknown key is an error rather than a silently ignored typo. Command-line overrides (``key=value``,
value parsed as YAML) are applied on top. This module does not train.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from .config import RewardDataArguments, RewardModelArguments, RewardTrainingConfig

__all__ = ["Recipe", "load_recipe", "parse_overrides", "recipe_from_mapping"]


@dataclasses.dataclass
class Recipe:
    model: RewardModelArguments
    data: RewardDataArguments
    training: RewardTrainingConfig


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["learning_rate=1e-5", "use_peft=true"]`` -> ``{"learning_rate": 1e-5, "use_peft": True}``."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} must look like key=value")
        parsed = yaml.safe_load(value) if value.strip() else None
        # YAML reads "1e-5" as a string (it wants "1.0e-5"); numbers people type should be numbers.
        if isinstance(parsed, str):
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key.strip()] = parsed
    return out


def recipe_from_mapping(values: Mapping[str, Any], output_dir: str | Path | None = None) -> Recipe:
    """Split a flat mapping over the three dataclasses and build them (validating each)."""
    model_fields = {f.name for f in dataclasses.fields(RewardModelArguments)}
    data_fields = {f.name for f in dataclasses.fields(RewardDataArguments)}
    training_fields = {f.name for f in dataclasses.fields(RewardTrainingConfig) if f.init}
    model_kw, data_kw, training_kw = {}, {}, {}
    for key, value in values.items():
        if key in model_fields:
            model_kw[key] = value
        elif key in data_fields:
            data_kw[key] = value
        elif key in training_fields:
            training_kw[key] = value
        else:
            raise ValueError(f"unknown recipe key {key!r}")
    if output_dir is not None:
        training_kw["output_dir"] = str(output_dir)
    return Recipe(RewardModelArguments(**model_kw), RewardDataArguments(**data_kw), RewardTrainingConfig(**training_kw))


def load_recipe(
    path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, output_dir: str | Path | None = None
) -> Recipe:
    """Read a recipe YAML (or start from the defaults when ``path`` is None) and apply overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(f"recipe {path} must be a mapping of key: value")
        values.update(loaded)
    values.update(overrides or {})
    return recipe_from_mapping(values, output_dir)
