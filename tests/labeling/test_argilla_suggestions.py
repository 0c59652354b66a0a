"""Only a judge whose measured reliability passes the thresholds pre-selects its verdict in Argilla;
every judge's answer, confidence and reasoning is shown either way."""

from __future__ import annotations

import pytest

from labeling.argilla.schema import JudgeSuggestion, PushItem, to_record
from labeling.argilla.suggestions import (
    JudgeOpinion,
    SuggestionPolicy,
    assess_judges,
    choose_suggestion,
    render_judges,
)

POLICY = SuggestionPolicy(min_consistency=0.8, min_labels=20, min_agreement=0.6)


@pytest.mark.parametrize("flags, agreement, reliable, reason", [
    # The judge: position consistency 0.0 (it answered "Tie" whichever way round): never pre-selects.
    ([False] * 25, (0, None), False, "position consistency 0.00 < 0.80"),
    ([True] * 19, (0, None), False, "measured on 19 label(s), fewer than 20"),
    ([True] * 18 + [False] * 2, (0, None), True, ""),  # 0.9 over 20: reliable; agreement not measured yet
    ([True] * 20, (30, 0.4), False, "agreement with the human majority 0.40 < 0.60 (n=30)"),
    ([True] * 20, (5, 0.0), True, ""),  # 5 human-labeled pairs are too few to judge the judge by
])
def test_assess_judges(flags, agreement, reliable, reason):
    [r] = assess_judges({"j": flags}, {"j": agreement}, POLICY).values()
    assert r.reliable == reliable and (reason in r.reason if reason else r.reason == "")


def test_never_pre_selects_from_an_unreliable_judge_even_when_it_is_more_confident():
    reliability = assess_judges({"tie-bot": [False] * 30, "careful": [True] * 30}, {}, POLICY)
    opinions = [JudgeOpinion("tie-bot", "tie", 0.99, "both fine"), JudgeOpinion("careful", "a", 0.7, "A cites a source")]
    assert choose_suggestion(opinions, reliability) == JudgeSuggestion("a", "careful", 0.7)
    assert choose_suggestion(opinions[:1], reliability) is None  # only the unreliable judge answered
    assert choose_suggestion([JudgeOpinion("unknown", "a", 1.0)], reliability) is None  # never measured


def test_the_judges_field_says_who_said_what_and_why():
    reliability = assess_judges({"tie-bot": [False] * 30, "careful": [True] * 30}, {}, POLICY)
    opinions = [JudgeOpinion("tie-bot", "tie", 0.99, "both\nfine", consistent=False),
                JudgeOpinion("careful", "a", 0.7, "A cites a source", consistent=True)]
    suggestion = choose_suggestion(opinions, reliability)
    text = render_judges(opinions, reliability, suggestion)
    assert text.splitlines()[0] == ("- **careful**: Response A, confidence 0.70 (same after swapping the responses). "
                                    "position consistency 100% over 30 label(s); **pre-selected**.")
    assert "> A cites a source" in text and "> both fine" in text
    assert ("**tie-bot**: Tie, confidence 0.99 (changed when the responses were swapped). position consistency 0% "
            "over 30 label(s); not pre-selected: position consistency 0.00 < 0.80.") in text

    item = PushItem("c1", "p", "a", "b", suggestion=suggestion, judges=text)
    assert to_record(item).fields["judges"] == text
    assert "judges" not in to_record(item, with_judges=False).fields  # a dataset made before the field
