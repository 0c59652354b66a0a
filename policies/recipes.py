"""Policy training recipes: one YAML file per experiment (``recipes/dpo_*.yaml``, ``recipes/rl_*.yaml``).

A recipe names the method (``dpo``, ``grpo`` or ``rloo``), the decision type, the base model (``smollm2`` for the
packaged SmolLM2-135M-Instruct, or a checkpoint path), the LoRA adapter (``lora: null`` trains every weight),
the trainer's arguments (any field of :class:`~policies.dpo.PolicyDPOConfig` /
:class:`~policies.online_rl.PolicyGRPOConfig` / :class:`~policies.online_rl.PolicyRLOOConfig`), and how the
training data is built (``data``: free-form, read by the job that builds pairs or prompts).

Unknown trainer arguments are an error naming the nearest valid ones, so a typo never silently falls back to a
default. The run's output directory is not part of a recipe: the job decides where runs go.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from policies.training import DEFAULT_LORA, LoraSpec

METHODS = ("dpo", "grpo", "rloo")


class RecipeError(ValueError):
    """A recipe file is malformed."""


@dataclass(frozen=True)
class Recipe:
    method: str
    decision_type: str
    base_model: str = "smollm2"
    lora: LoraSpec | None = DEFAULT_LORA
    training: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def trainer_config(self, **overrides: Any):
        """The TRL config object for this recipe (``overrides`` win, e.g. ``max_steps`` from the CLI)."""
        cls = config_class(self.method)
        values = {**self.training, **overrides}
        _check_keys(cls, values, self.source or "recipe")
        return cls(**values)


def config_class(method: str):
    if method == "dpo":
        from policies.dpo import PolicyDPOConfig

        return PolicyDPOConfig
    if method == "grpo":
        from policies.online_rl import PolicyGRPOConfig

        return PolicyGRPOConfig
    if method == "rloo":
        from policies.online_rl import PolicyRLOOConfig

        return PolicyRLOOConfig
    raise RecipeError(f"unknown method {method!r}; choose from {METHODS}")


def _check_keys(cls, values: dict[str, Any], where: str) -> None:
    valid = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in values:
        if key == "output_dir":
            raise RecipeError(f"{where}: output_dir is chosen by the job, not the recipe")
        if key not in valid:
            near = difflib.get_close_matches(key, valid, n=3)
            raise RecipeError(f"{where}: unknown training argument {key!r}" + (f"; did you mean {near}?" if near else ""))


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"recipe not found: {path}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise RecipeError(f"{path}: expected a mapping at the top level")
    unknown = set(raw) - {"method", "decision_type", "base_model", "lora", "training", "data"}
    if unknown:
        raise RecipeError(f"{path}: unknown keys {sorted(unknown)}")
    for key in ("method", "decision_type"):
        if not raw.get(key):
            raise RecipeError(f"{path}: '{key}' is required")
    if raw["method"] not in METHODS:
        raise RecipeError(f"{path}: unknown method {raw['method']!r}; choose from {METHODS}")
    lora_raw = raw.get("lora", {})
    try:
        lora = None if lora_raw is None else LoraSpec(**{k: tuple(v) if isinstance(v, list) else v
                                                         for k, v in lora_raw.items()})
    except TypeError as exc:
        raise RecipeError(f"{path}: bad lora section: {exc}") from exc
    recipe = Recipe(method=raw["method"], decision_type=raw["decision_type"],
                    base_model=str(raw.get("base_model", "smollm2")), lora=lora,
                    training=dict(raw.get("training") or {}), data=dict(raw.get("data") or {}), source=str(path))
    _check_keys(config_class(recipe.method), recipe.training, str(path))
    return recipe
