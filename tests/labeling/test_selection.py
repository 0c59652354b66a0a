"""Active selection: which comparisons humans see first."""

from __future__ import annotations

import pytest

from labeling.selection import Candidate, select_for_annotation


def _pool() -> list[Candidate]:
    return [
        Candidate("calm", {"j1": "a", "j2": "a"}, reward_margin=2.0),
        Candidate("close-call", {"j1": "a", "j2": "a"}, reward_margin=0.05),
        Candidate("split", {"j1": "a", "j2": "b"}, reward_margin=3.0),
        Candidate("flip", {"j1": "a", "j2": "a"}, inconsistent_judges=1, reward_margin=5.0),
        Candidate("unknown"),
        Candidate("mid", {"j1": "b", "j2": "b"}, reward_margin=0.5),
    ]


def test_uncertainty_orders_inconsistent_then_disagreement_then_smallest_margin():
    picked = select_for_annotation(_pool(), budget=6)
    assert [s.comparison_id for s in picked] == ["flip", "split", "close-call", "mid", "calm", "unknown"]
    assert [s.reason for s in picked[:3]] == ["inconsistent", "disagreement", "small_margin"]
    assert picked[-1].reason == "unscored"
    # Priorities fall strictly with the rank, so sorting by priority in Argilla keeps this order.
    assert [s.priority for s in picked] == sorted((s.priority for s in picked), reverse=True)
    assert len({s.priority for s in picked}) == len(picked)


def test_budget_cuts_the_ranking():
    picked = select_for_annotation(_pool(), budget=2)
    assert [s.comparison_id for s in picked] == ["flip", "split"]
    assert select_for_annotation(_pool(), budget=0) == []


def test_more_inconsistent_judges_and_more_even_splits_come_first_within_a_tier():
    pool = [
        Candidate("one-flip", inconsistent_judges=1),
        Candidate("two-flips", inconsistent_judges=2),
        Candidate("2-1", {"j1": "a", "j2": "a", "j3": "b"}),
        Candidate("1-1-1", {"j1": "a", "j2": "b", "j3": "tie"}),
    ]
    assert [s.comparison_id for s in select_for_annotation(pool, budget=4)] == [
        "two-flips",
        "one-flip",
        "1-1-1",
        "2-1",
    ]


def test_ties_keep_the_callers_order():
    pool = [Candidate("z-old"), Candidate("a-new"), Candidate("m", reward_margin=1.0), Candidate("b", reward_margin=1.0)]
    assert [s.comparison_id for s in select_for_annotation(pool, budget=4)] == ["m", "b", "z-old", "a-new"]


def test_negative_margins_count_by_size():
    pool = [Candidate("neg", reward_margin=-0.1), Candidate("pos", reward_margin=0.3)]
    assert select_for_annotation(pool, budget=2)[0].comparison_id == "neg"


def test_random_is_seeded_and_fifo_keeps_order():
    pool = _pool()
    first = [s.comparison_id for s in select_for_annotation(pool, 6, strategy="random", seed=3)]
    again = [s.comparison_id for s in select_for_annotation(pool, 6, strategy="random", seed=3)]
    other = [s.comparison_id for s in select_for_annotation(pool, 6, strategy="random", seed=4)]
    assert first == again and sorted(first) == sorted(c.comparison_id for c in pool)
    assert first != other
    assert [s.comparison_id for s in select_for_annotation(pool, 3, strategy="fifo")] == ["calm", "close-call", "split"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="budget"):
        select_for_annotation(_pool(), budget=-1)
    with pytest.raises(ValueError, match="unknown strategy"):
        select_for_annotation(_pool(), budget=1, strategy="margin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicate"):
        select_for_annotation([Candidate("x"), Candidate("x")], budget=1)
    with pytest.raises(ValueError, match="NaN"):
        Candidate("x", reward_margin=float("nan"))
