"""Recipes: every shipped one loads into its TRL config; typos are errors, not silent defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.dpo import PolicyDPOConfig
from policies.online_rl import PolicyGRPOConfig, PolicyRLOOConfig
from policies.recipes import RecipeError, load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("dpo_*.yaml")) + sorted(
    (Path(__file__).resolve().parents[2] / "recipes").glob("rl_*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipes_build_their_configs(path):
    recipe = load_recipe(path)
    config = recipe.trainer_config(max_steps=3)
    expected = {"dpo": PolicyDPOConfig, "grpo": PolicyGRPOConfig, "rloo": PolicyRLOOConfig}[recipe.method]
    assert type(config) is expected and config.max_steps == 3
    assert config.learning_rate == recipe.training["learning_rate"]
    assert not config.gradient_checkpointing and config.report_to == []


def test_recipe_errors(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("method: dpo\ndecision_type: content\ntraining:\n  learning_rat: 0.1\n")
    with pytest.raises(RecipeError, match="did you mean.*learning_rate"):
        load_recipe(bad)
    bad.write_text("method: ppo\ndecision_type: content\n")
    with pytest.raises(RecipeError, match="unknown method"):
        load_recipe(bad)
    bad.write_text("method: dpo\ndecision_type: content\ntraining:\n  output_dir: /tmp/x\n")
    with pytest.raises(RecipeError, match="chosen by the job"):
        load_recipe(bad)
    bad.write_text("method: dpo\ndecision_type: content\nlora: null\n")
    assert load_recipe(bad).lora is None
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "missing.yaml")
