"""Defaults that work from anywhere: shipped recipes by name from any directory, one Redis database per
embedded Argilla."""

from __future__ import annotations

import pytest

from app.cli.common import SHIPPED_RECIPES, resolve_recipe
from app.errors import ArbiterError
from app.services.argilla import embedded_config
from app.settings import Settings


@pytest.mark.parametrize("given", ["recipes/dpo_content.yaml", "dpo_content.yaml", "dpo_content"])
def test_shipped_recipes_resolve_by_name_outside_the_repository(tmp_path, monkeypatch, given):
    monkeypatch.chdir(tmp_path)  # the README's `--recipe recipes/...` used to fail here
    assert resolve_recipe(given) == SHIPPED_RECIPES / "dpo_content.yaml"


def test_a_local_recipe_file_wins_and_an_unknown_name_lists_the_shipped_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "recipes").mkdir()
    own = tmp_path / "recipes" / "dpo_content.yaml"
    own.write_text("method: dpo\n")
    assert resolve_recipe("recipes/dpo_content.yaml") == own.relative_to(tmp_path)
    with pytest.raises(ArbiterError, match="does not exist.*dpo_routing.*reward_minilm"):
        resolve_recipe("recipes/dpo_nonsense.yaml")


def test_train_commands_take_a_shipped_recipe_name_from_any_directory(run_cli, tmp_path, monkeypatch):
    """Resolved before anything runs: an unknown recipe stops `train reward` with exit 2 and the list."""
    monkeypatch.chdir(tmp_path)
    result = run_cli("train", "reward", "--data", tmp_path / "none.jsonl", "--recipe", "recipes/nope.yaml")
    assert result.exit_code == 2 and "reward_hh" in result.output


def test_embedded_argilla_instances_on_different_ports_use_different_redis_databases(tmp_path):
    first = embedded_config(Settings(var_dir=tmp_path / "a", argilla_port=6900))
    second = embedded_config(Settings(var_dir=tmp_path / "b", argilla_port=6901))
    assert first.redis_url != second.redis_url
    assert {first.redis_url.rsplit("/", 1)[1], second.redis_url.rsplit("/", 1)[1]} <= {str(n) for n in range(1, 16)}
    explicit = embedded_config(Settings(var_dir=tmp_path / "c", redis_url="redis://cache:6379/9"))
    assert explicit.redis_url == "redis://cache:6379/9"
