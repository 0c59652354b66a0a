"""Agreement of a judge with human labels, and its consistency across orders."""

from __future__ import annotations

import pytest

from labeling import FallbackChain, RewardModelJudge, comparisons_from_pairs, evaluate_judge_on_file
from labeling.verdicts import Verdict
from reward_models.pairs import read_pairs


class OracleScorer:
    """Scores the human-chosen responses 1 and everything else 0: a judge that agrees with humans."""

    def __init__(self, chosen: set[str]) -> None:
        self.chosen = chosen

    def score(self, prompts, responses):
        return [1.0 if r in self.chosen else 0.0 for r in responses]


class FirstPositionJudge:
    """Always prefers the response it reads first: the extreme position bias."""

    name, provider, model, rubric_version = "first-position", "local", "none", None

    async def judge(self, request):
        return Verdict("first", 0.9, "first", self.name, self.provider, self.model, None)


def test_comparisons_put_the_chosen_response_on_a_random_side(hh_path):
    pairs = read_pairs(hh_path)[:200]
    items = comparisons_from_pairs(pairs, seed=3)
    share_a = sum(item.human == "a" for item in items) / len(items)
    assert 0.4 < share_a < 0.6  # balanced, so "always A" cannot look good
    assert [i.human for i in items] == [i.human for i in comparisons_from_pairs(pairs, seed=3)]
    for item, pair in zip(items, pairs):
        chosen = item.comparison.response_a if item.human == "a" else item.comparison.response_b
        assert chosen == pair.chosen and item.comparison.prompt == pair.prompt_text()


def test_a_judge_that_agrees_with_humans_scores_one(hh_path):
    chosen = {pair.chosen for pair in read_pairs(hh_path)[:40]}
    chain = FallbackChain([RewardModelJudge(OracleScorer(chosen))])
    evaluation = evaluate_judge_on_file(chain, hh_path, limit=40)
    # A few HH pairs have the same text chosen and rejected: those are honest ties.
    assert evaluation.labeled == 40 and evaluation.agreement_decided == 1.0
    assert evaluation.agreement >= 0.9 and evaluation.consistency_rate == 1.0


def test_a_position_biased_judge_is_caught(hh_path):
    evaluation = evaluate_judge_on_file(FallbackChain([FirstPositionJudge()]), hh_path, limit=30)
    assert evaluation.consistency_rate == 0.0
    assert evaluation.coverage == 0.0 and evaluation.agreement == 0.0
    assert evaluation.agreement_ties_half == 0.5  # no better than a coin
    assert evaluation.to_dict()["labels_by_judge"] == {"first-position": 30}


def test_bad_arguments_are_refused(hh_path, tmp_path):
    chain = FallbackChain([FirstPositionJudge()])
    with pytest.raises(ValueError, match="limit"):
        evaluate_judge_on_file(chain, hh_path, limit=0)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError, match="no preference pairs"):
        evaluate_judge_on_file(chain, empty)
