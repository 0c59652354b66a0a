"""Agreement metrics against published known-answer tables, and their edge cases."""

from __future__ import annotations

import random

import pytest
from sklearn.metrics import cohen_kappa_score

from labeling.agreement import (
    Annotation,
    agreement_report,
    annotations_from_mapping,
    annotator_stats,
    cohen_kappa,
    judge_agreement,
    krippendorff_alpha_nominal,
    majority_labels,
)


def _from_rows(rows: dict[str, list]) -> list[Annotation]:
    """Observer -> values per unit (None = missing), as the tables in Krippendorff's paper."""
    return [
        Annotation(item_id=f"u{unit}", rater=rater, value=value)
        for rater, values in rows.items()
        for unit, value in enumerate(values, start=1)
        if value is not None
    ]


def test_krippendorff_alpha_nominal_textbook_example_with_missing_data():
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: four
    observers, twelve units, values 1-5 with missing data; the paper gives nominal alpha = 0.743.
    Unit 12 has a single value (unpairable) and must not count."""
    rows = {
        "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
        "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
        "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
        "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
    }
    assert krippendorff_alpha_nominal(_from_rows(rows)) == pytest.approx(0.743, abs=5e-4)


def test_krippendorff_alpha_binary_two_observers():
    """Same paper, example A: two observers, ten binary units, alpha = 0.095."""
    rows = {"1": [0, 1, 0, 0, 0, 0, 0, 0, 1, 0], "2": [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]}
    assert krippendorff_alpha_nominal(_from_rows(rows)) == pytest.approx(0.095, abs=5e-4)


def test_krippendorff_alpha_perfect_and_undefined():
    perfect = annotations_from_mapping({"x": {"r1": "a", "r2": "a"}, "y": {"r1": "b", "r2": "b"}})
    assert krippendorff_alpha_nominal(perfect) == pytest.approx(1.0)
    # Every value identical: expected disagreement is zero, alpha is undefined, not 1 or NaN.
    same = annotations_from_mapping({"x": {"r1": "a", "r2": "a"}, "y": {"r1": "a", "r2": "a"}})
    assert krippendorff_alpha_nominal(same) is None
    # Only singly-annotated items: nothing is pairable.
    assert krippendorff_alpha_nominal(annotations_from_mapping({"x": {"r1": "a"}})) is None


def test_cohen_kappa_textbook_table():
    """50 items: yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> p_o 0.7, p_e 0.5, kappa 0.4."""
    rater1 = ["yes"] * 25 + ["no"] * 25
    rater2 = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(rater1, rater2) == pytest.approx(0.4)


def test_cohen_kappa_matches_scikit_learn_on_random_three_way_labels():
    rng = random.Random(7)
    truth = [rng.choice("abt") for _ in range(300)]
    noisy = [v if rng.random() < 0.55 else rng.choice("abt") for v in truth]
    assert cohen_kappa(truth, noisy) == pytest.approx(cohen_kappa_score(truth, noisy))


def test_cohen_kappa_edge_cases():
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # p_e = 1
    with pytest.raises(ValueError, match="length"):
        cohen_kappa(["a"], ["a", "b"])


def test_majority_skips_ties_and_respects_min_votes():
    human = annotations_from_mapping(
        {
            "clear": {"h1": "a", "h2": "a", "h3": "b"},
            "tied": {"h1": "a", "h2": "b"},
            "single": {"h1": "tie"},
        }
    )
    assert majority_labels(human) == {"clear": "a", "single": "tie"}
    assert majority_labels(human, min_votes=2) == {"clear": "a"}


def test_a_rater_cannot_vote_twice_with_different_values():
    with pytest.raises(ValueError, match="two different values"):
        majority_labels([Annotation("x", "h1", "a"), Annotation("x", "h1", "b")])


def test_judge_agreement_against_human_majority():
    human = annotations_from_mapping(
        {
            "c1": {"h1": "a", "h2": "a"},
            "c2": {"h1": "b", "h2": "b"},
            "c3": {"h1": "a", "h2": "b"},  # no majority: not used
            "c4": {"h1": "b"},
        }
    )
    judges = annotations_from_mapping(
        {
            "c1": {"good": "a", "contrarian": "b"},
            "c2": {"good": "b", "contrarian": "a"},
            "c3": {"good": "a", "contrarian": "a"},
            "c4": {"good": "b", "contrarian": "a"},
            "c5": {"good": "a"},  # no human label at all
        }
    )
    by_judge = {j.judge: j for j in judge_agreement(judges, human)}
    assert by_judge["good"].n == 3 and by_judge["good"].agreement == 1.0
    assert by_judge["good"].kappa == pytest.approx(1.0)
    assert by_judge["contrarian"].agreement == 0.0
    assert by_judge["contrarian"].kappa < 0


def test_annotator_stats_use_the_majority_of_the_others():
    human = annotations_from_mapping(
        {
            "c1": {"ann": "a", "bob": "a", "cy": "a"},
            "c2": {"ann": "b", "bob": "a", "cy": "a"},  # ann disagrees with the others
            "c3": {"ann": "a"},  # nobody else: not compared
        }
    )
    stats = {s.annotator: s for s in annotator_stats(human)}
    assert stats["ann"].n_labels == 3 and stats["ann"].n_compared == 2
    assert stats["ann"].agreement_with_majority == pytest.approx(0.5)
    # bob on c2: the others are ann (b) and cy (a): a tie, so c2 is not compared for bob.
    assert stats["bob"].n_compared == 1 and stats["bob"].agreement_with_majority == 1.0


def test_report_is_json_ready():
    import json

    human = annotations_from_mapping({"c1": {"h1": "a", "h2": "a"}, "c2": {"h1": "b"}})
    report = agreement_report(human, annotations_from_mapping({"c1": {"j": "a"}}))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["n_items"] == 2 and data["n_multiply_annotated"] == 1 and data["n_with_majority"] == 2
    assert data["judges"][0]["judge"] == "j" and data["judges"][0]["agreement"] == 1.0
