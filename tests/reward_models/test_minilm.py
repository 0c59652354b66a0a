"""A real all-MiniLM-L6-v2 reward model trained on a few dozen pairs (slow: tens of seconds)."""

from __future__ import annotations

import pytest

from reward_models.config import RewardDataArguments, RewardModelArguments, RewardTrainingConfig
from reward_models.evaluation import evaluate_pairs
from reward_models.scoring import RewardScorer
from reward_models.snapshot import SnapshotRules, build_snapshot, labeled_pairs_from_preferences
from reward_models.training import train_reward_model

from .tiny import toy_pairs

pytestmark = pytest.mark.slow


def test_minilm_learns_a_simple_preference_in_the_right_direction(tmp_path):
    train = build_snapshot(labeled_pairs_from_preferences(toy_pairs(32, seed=1)), SnapshotRules(validation_fraction=0.25))
    held_out = toy_pairs(24, seed=2)
    config = RewardTrainingConfig(
        output_dir=str(tmp_path / "minilm"),
        num_train_epochs=3,
        per_device_train_batch_size=8,
        learning_rate=2e-4,
        max_length=32,
        disable_tqdm=True,
        save_strategy="no",
    )
    result = train_reward_model(train, RewardModelArguments("minilm"), RewardDataArguments(max_response_tokens=12), config)
    after = evaluate_pairs(RewardScorer.load(result.artifact_dir), held_out)
    assert after.accuracy >= 0.9, after
    assert result.manifest.metrics["validation_accuracy"] >= 0.9
    assert result.manifest.calibration["n"] == len(train.validation)
    # The same pairs, the other way round, are now judged wrong: the model learned the direction.
    flipped = [type(p)(p.prompt, p.rejected, p.chosen, p.format) for p in held_out]
    assert evaluate_pairs(RewardScorer.load(result.artifact_dir), flipped).accuracy <= 0.1
