"""Recipes: shipped files load, keys land in the right dataclass, typos and bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from reward_models.recipes import load_recipe, parse_overrides

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


@pytest.mark.parametrize("name", sorted(p.name for p in RECIPES.glob("reward_*.yaml")))
def test_shipped_recipes_load(name, tmp_path):
    recipe = load_recipe(RECIPES / name, output_dir=tmp_path)
    assert recipe.model.model_name_or_path in ("minilm", "smollm2")
    assert recipe.training.output_dir == str(tmp_path) and recipe.training.report_to in ([], "none", ["none"])
    assert recipe.training.max_length > recipe.data.max_response_tokens


def test_keys_are_spread_and_overrides_win(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model_name_or_path: minilm\nuse_peft: true\nmargin_scale: 0.5\nlearning_rate: 1.0e-4\n")
    recipe = load_recipe(path, parse_overrides(["learning_rate=2e-5", "lora_r=8", "num_train_epochs=3"]))
    assert recipe.model.use_peft and recipe.model.lora_r == 8
    assert recipe.data.margin_scale == 0.5
    assert recipe.training.learning_rate == 2e-5 and recipe.training.num_train_epochs == 3


@pytest.mark.parametrize(
    "values, match",
    [
        ({"learnin_rate": 1e-4}, "unknown recipe key 'learnin_rate'"),
        ({"margin_scale": -1}, "margin_scale"),
        ({"lora_r": 0}, "lora_r"),
        ({"max_length": 4}, "max_length"),
    ],
)
def test_bad_recipes_are_refused(tmp_path, values, match):
    from reward_models.recipes import recipe_from_mapping

    with pytest.raises(ValueError, match=match):
        recipe_from_mapping(values, output_dir=tmp_path)


def test_override_syntax():
    assert parse_overrides(["use_peft=true", "lora_target_modules=[q_proj, v_proj]"]) == {
        "use_peft": True, "lora_target_modules": ["q_proj", "v_proj"]}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["learning_rate"])
