"""The matching rules of the in-process search engine (pure functions, no server)."""

from __future__ import annotations

from datetime import datetime

import pytest

from labeling.argilla.record_documents import (
    RecordDoc,
    cosine_similarity,
    parse_text_query,
    range_match,
    sort_documents,
    terms_match,
    text_score,
)

TEXTS = ["How do I bake bread?", "Mix flour, water and yeast. Bake at 220C for 30 minutes."]


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("bake", True),
        ("BAKE bread", True),  # case-insensitive, words ANDed
        ("bake cake", False),  # one word missing -> no match
        ('"bake bread"', True),  # phrase, adjacent words
        ('"bread bake"', False),  # phrase in the wrong order
        ('"bread mix"', False),  # a phrase never spans two fields
        ("bread yeast", True),  # but separate words may sit in different fields
        ("bake -yeast", False),  # exclusion
        ("bake -cake", True),
        ("cake | bread", True),  # alternatives
        ("cake|pie", False),
        ("yea*", True),  # prefix
        ("yeasty", False),
        ("", True),  # empty query matches everything
    ],
)
def test_text_query_subset_of_simple_query_string(query, matches):
    assert (text_score(query, TEXTS) is not None) is matches


def test_more_hits_score_higher():
    assert text_score("bake", ["bake bake bake"]) > text_score("bake", ["bake once"])


def test_parse_keeps_negation_and_alternatives_apart():
    clauses = parse_text_query('tea|coffee -milk "hot water"')
    assert [c.negated for c in clauses] == [False, True, False]
    assert clauses[0].options == (("tea",), ("coffee",))
    assert clauses[2].options == (("hot", "water"),)


def test_terms_match_lists_and_numbers_as_strings():
    assert terms_match("a", ["a", "b"])
    assert terms_match(["x", "b"], ["b"])  # any element of a multi-label value
    assert terms_match(3, ["3"])  # the API sends terms as strings
    assert not terms_match(None, ["a"])


def test_range_match_numbers_dates_and_bounds():
    assert range_match(2.0, ge=2, le=3)
    assert not range_match(3.5, ge=2, le=3)
    assert range_match(5, ge=None, le=None)
    assert not range_match(None, ge=0)
    moment = datetime(2024, 5, 1, 12, 0)
    assert range_match(moment, ge="2024-05-01T00:00:00Z", le="2024-05-02T00:00:00+00:00")
    assert not range_match(moment, ge="2024-05-01T13:00:00")
    assert not range_match("not a number", ge=1)


def _doc(i: str, priority=None, agent=None) -> RecordDoc:
    return RecordDoc(
        id=i,
        external_id=i,
        status="pending",
        inserted_at=datetime(2024, 1, 1),
        updated_at=datetime(2024, 1, 1),
        metadata={} if priority is None else {"priority": priority},
        suggestions={} if agent is None else {"preference": {"agent": agent}},
    )


def test_sort_is_multi_key_with_missing_values_last_both_ways():
    docs = [_doc("a", 1, "z"), _doc("b", None, "y"), _doc("c", 3, "y"), _doc("d", 1, "x")]

    def by_priority(d):
        return d.metadata.get("priority")

    def by_agent(d):
        return d.suggestions.get("preference", {}).get("agent")

    asc = sort_documents(docs, [(by_priority, False), (by_agent, False)])
    assert [d.id for d in asc] == ["d", "a", "c", "b"]
    desc = sort_documents(docs, [(by_priority, True), (by_agent, True)])
    assert [d.id for d in desc] == ["c", "a", "d", "b"]


def test_record_property_refuses_unknown_names():
    with pytest.raises(ValueError, match="Unknown record property"):
        _doc("a").record_property("fields")


def test_cosine_similarity():
    assert cosine_similarity([1, 0], [1, 0]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [-1, 0]) == pytest.approx(-1.0)
    assert cosine_similarity([0, 0], [1, 0]) == 0.0
    with pytest.raises(ValueError):
        cosine_similarity([1], [1, 2])
