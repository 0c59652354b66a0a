"""Position-bias control and verdict parsing: pure functions, known answers."""

from __future__ import annotations

import pytest

from labeling import Comparison, JudgeRequest, Rubric, Verdict, combine_orders
from labeling.pairwise import INCONSISTENT_CONFIDENCE, choice_of
from labeling.rubric import VerdictParseError, parse_verdict


def verdict(preferred: str, confidence: float = 0.9, **kw) -> Verdict:
    return Verdict(preferred, confidence, "because", "j", "p", "m", "r1", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "preferred, order, expected",
    [
        ("first", "ab", "a"),  # A was shown first and won
        ("second", "ab", "b"),
        ("first", "ba", "b"),  # B was shown first and won
        ("second", "ba", "a"),
        ("tie", "ab", "tie"),
        ("tie", "ba", "tie"),
    ],
)
def test_choice_maps_position_back_to_the_comparison(preferred, order, expected):
    assert choice_of(verdict(preferred), order) == expected


@pytest.mark.parametrize(
    "ab, ba, choice, consistent",
    [
        # Same winner in both orders: the judge read the content.
        ("first", "second", "a", True),
        ("second", "first", "b", True),
        ("tie", "tie", "tie", True),
        # Always the first (or always the second) position: pure position bias -> tie.
        ("first", "first", "tie", False),
        ("second", "second", "tie", False),
        # One order undecided: not a reliable preference either.
        ("first", "tie", "tie", False),
    ],
)
def test_combine_orders(ab, ba, choice, consistent):
    label = combine_orders("c1", verdict(ab, 0.8, cost_usd=0.1), verdict(ba, 0.6, cost_usd=0.2))
    assert label.choice == choice
    assert label.consistent is consistent
    if consistent:
        assert label.confidence == pytest.approx(0.7)  # the mean of the two confidences
    else:
        assert label.confidence == INCONSISTENT_CONFIDENCE
    assert label.cost_usd == pytest.approx(0.3)
    assert (label.judge, label.model, label.rubric_version) == ("j", "m", "r1")


def test_request_orders_swap_the_responses():
    c = Comparison("x", "p", "resp A", "resp B")
    assert (JudgeRequest.from_comparison(c, "ab").first, JudgeRequest.from_comparison(c, "ab").second) == ("resp A", "resp B")
    assert (JudgeRequest.from_comparison(c, "ba").first, JudgeRequest.from_comparison(c, "ba").second) == ("resp B", "resp A")
    with pytest.raises(ValueError, match="order"):
        JudgeRequest.from_comparison(c, "aa")  # type: ignore[arg-type]


def test_comparison_rejects_bad_input():
    with pytest.raises(ValueError, match="id"):
        Comparison("", "p", "a", "b")
    with pytest.raises(TypeError, match="response_b"):
        Comparison("x", "p", "a", None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "raw, preferred, confidence",
    [
        ('{"choice": "A", "confidence": 0.75, "rationale": "clearer"}', "first", 0.75),
        ('{"choice": "b", "confidence": 1, "rationale": ""}', "second", 1.0),
        ({"choice": "tie", "confidence": 0.5, "rationale": "same"}, "tie", 0.5),
        ({"choice": "A", "confidence": 85, "rationale": "percent"}, "first", 0.85),  # 85 meant 85%
        ({"choice": "A", "confidence": -0.2, "rationale": "clamped"}, "first", 0.0),
    ],
)
def test_parse_verdict_accepts(raw, preferred, confidence):
    parsed = parse_verdict(raw)
    assert (parsed.preferred, parsed.confidence) == (preferred, pytest.approx(confidence))


@pytest.mark.parametrize(
    "raw, message",
    [
        ('{"choice": "A", "confidence": 0.7', "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"choice": "C", "confidence": 0.5, "rationale": ""}, "choice"),
        ({"choice": "A", "confidence": "high", "rationale": ""}, "confidence"),
        ({"choice": "A", "confidence": True, "rationale": ""}, "confidence"),
        ({"choice": "A", "confidence": 0.5, "rationale": 3}, "rationale"),
    ],
)
def test_parse_verdict_rejects(raw, message):
    with pytest.raises(VerdictParseError, match=message):
        parse_verdict(raw)


def test_rubric_version_is_a_hash_of_the_text():
    assert Rubric("be fair").version == Rubric("be fair").version
    assert Rubric("be fair").version != Rubric("be fair.").version
    with pytest.raises(ValueError):
        Rubric("   ")
