"""Evaluation figures (known answers) and evaluation of the three pair-file formats."""

from __future__ import annotations

import math

import pytest

from reward_models.evaluation import evaluate_file, evaluate_rewards
from reward_models.pairs import write_pairs
from reward_models.scoring import RewardScorer

from .tiny import toy_pairs


def test_known_answers():
    """Rewards (chosen, rejected): (2, 1) right, (0, 3) wrong, (1, 1) a tie -> accuracy 1.5 / 3.

    Lengths (chosen, rejected): (10, 5), (3, 8), (4, 4) -> the longer one wins once, loses once,
    ties once -> longer-response accuracy 0.5 too. Rewards rise with length (Spearman > 0.5).
    """
    r = evaluate_rewards([2.0, 0.0, 1.0], [1.0, 3.0, 1.0], [10, 3, 4], [5, 8, 4], temperature=2.0)
    assert r.n == 3 and r.accuracy == pytest.approx(0.5) and r.longer_response_accuracy == pytest.approx(0.5)
    assert r.mean_margin == pytest.approx((1 - 3 + 0) / 3)
    assert r.length_correlation > 0.5 and r.temperature == 2.0
    assert r.nll == pytest.approx(-(math.log(1 / (1 + math.exp(-0.5))) + math.log(1 / (1 + math.exp(1.5))) + math.log(0.5)) / 3)


def test_constant_rewards_have_no_length_correlation_and_empty_input_is_refused():
    assert math.isnan(evaluate_rewards([1.0, 1.0], [1.0, 1.0], [1, 2], [3, 4]).length_correlation)
    with pytest.raises(ValueError, match="zero pairs"):
        evaluate_rewards([], [], [], [])
    with pytest.raises(ValueError, match="one entry per pair"):
        evaluate_rewards([1.0], [1.0, 2.0], [1], [1])


def test_the_three_file_formats_give_the_same_report(tiny_decoder_dir, tmp_path):
    scorer = RewardScorer.load(tiny_decoder_dir)  # a plain model directory works too
    pairs = toy_pairs(10, seed=7)
    reports = {}
    for fmt in ("prompt", "conversational", "hh"):
        write_pairs(tmp_path / f"{fmt}.jsonl", pairs, fmt)
        reports[fmt] = evaluate_file(scorer, tmp_path / f"{fmt}.jsonl")
    assert reports["prompt"].n == 10
    assert reports["prompt"] == reports["conversational"] == reports["hh"]
