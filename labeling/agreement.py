"""How much labelers agree: judges against humans, and humans among themselves.

Pure functions over `Annotation`s (one rater's nominal value for one item: "a", "b" or "tie" for
Arbiter's comparisons, but any hashable category works):

- `majority_labels`: the human majority per item: the plurality value, only when it is unique
  (an item whose top values tie has no majority and is left out).
- `cohen_kappa`: Cohen's kappa between two aligned label sequences.
- `judge_agreement`: per judge, raw agreement and Cohen's kappa against the human majority, on
  the items that have both.
- `krippendorff_alpha_nominal`: Krippendorff's alpha for nominal data, any number of raters,
  missing ratings allowed (coincidence-matrix form, Krippendorff 2011, "Computing Krippendorff's
  Alpha-Reliability").
- `annotator_stats`: per annotator, how many labels and how often they agree with the majority of
  the *other* annotators (leave-one-out, so that a rater's own vote does not inflate the figure).
- `agreement_report`: all of the above as one JSON-ready object.

Undefined statistics (no items, or no variation at all, which makes chance agreement 1) are
returned as None rather than NaN, so reports stay valid JSON. This module reads no store.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "AgreementReport",
    "Annotation",
    "AnnotatorStats",
    "JudgeAgreement",
    "agreement_report",
    "annotations_from_mapping",
    "annotator_stats",
    "cohen_kappa",
    "judge_agreement",
    "krippendorff_alpha_nominal",
    "majority_labels",
]


@dataclass(frozen=True)
class Annotation:
    """One rater's value for one item (a human annotator or a judge)."""

    item_id: str
    rater: str
    value: Hashable


@dataclass(frozen=True)
class JudgeAgreement:
    judge: str
    n: int  # items with both a judge label and a human majority
    agreement: float | None  # share of those items where the judge matches the majority
    kappa: float | None  # Cohen's kappa on the same items


@dataclass(frozen=True)
class AnnotatorStats:
    annotator: str
    n_labels: int
    n_compared: int  # items where the other annotators have a majority
    agreement_with_majority: float | None


@dataclass
class AgreementReport:
    n_items: int  # items with at least one human label
    n_with_majority: int
    n_multiply_annotated: int  # items with two or more human labels (what alpha can use)
    krippendorff_alpha: float | None
    judges: list[JudgeAgreement] = field(default_factory=list)
    annotators: list[AnnotatorStats] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _by_item(annotations: Iterable[Annotation]) -> dict[str, dict[str, Hashable]]:
    """item -> rater -> value; a rater labelling an item twice is a caller bug, not a second vote."""
    items: dict[str, dict[str, Hashable]] = defaultdict(dict)
    for ann in annotations:
        previous = items[ann.item_id].get(ann.rater)
        if previous is not None and previous != ann.value:
            raise ValueError(f"rater {ann.rater!r} has two different values for item {ann.item_id!r}")
        items[ann.item_id][ann.rater] = ann.value
    return dict(items)


def _plurality(values: Iterable[Hashable]) -> Hashable | None:
    counts = Counter(values).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def majority_labels(human: Iterable[Annotation], min_votes: int = 1) -> dict[str, Hashable]:
    """item -> the unique plurality value among its human labels (items with fewer than
    `min_votes` labels, or with a tie at the top, have no majority)."""
    if min_votes < 1:
        raise ValueError("min_votes must be at least 1")
    result = {}
    for item, ratings in _by_item(human).items():
        if len(ratings) >= min_votes:
            winner = _plurality(ratings.values())
            if winner is not None:
                result[item] = winner
    return result


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa: (p_o - p_e) / (1 - p_e), with p_e from each rater's own marginals.

    Example: the 50-item table with 20 yes/yes, 5 yes/no, 10 no/yes and 15 no/no gives
    p_o = 0.7, p_e = 0.5 and kappa = 0.4. None when there are no items or p_e = 1.
    """
    if len(a) != len(b):
        raise ValueError(f"sequences differ in length: {len(a)} != {len(b)}")
    n = len(a)
    if n == 0:
        return None
    p_o = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    p_e = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if p_e == 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def judge_agreement(judges: Iterable[Annotation], human: Iterable[Annotation]) -> list[JudgeAgreement]:
    """Per judge (the `rater` of each judge annotation), agreement and kappa vs the human majority."""
    majority = majority_labels(human)
    per_judge: dict[str, dict[str, Hashable]] = defaultdict(dict)
    for item, ratings in _by_item(judges).items():
        for judge, value in ratings.items():
            per_judge[judge][item] = value
    result = []
    for judge in sorted(per_judge):
        shared = sorted(set(per_judge[judge]) & set(majority))
        judged = [per_judge[judge][i] for i in shared]
        truth = [majority[i] for i in shared]
        agreement = sum(x == y for x, y in zip(judged, truth)) / len(shared) if shared else None
        result.append(JudgeAgreement(judge, len(shared), agreement, cohen_kappa(judged, truth)))
    return result


def krippendorff_alpha_nominal(annotations: Iterable[Annotation]) -> float | None:
    """Krippendorff's alpha for nominal values: 1 - D_o / D_e over pairable values.

    Each item with m >= 2 ratings adds, for every ordered pair of its ratings from different
    raters, 1 / (m - 1) to the coincidence matrix o[c][k]; items with one rating are unpairable
    and ignored. With n_c the row sums and n the total, D_o is the off-diagonal mass of o and D_e
    the off-diagonal mass expected by chance, (n^2 - sum n_c^2) / (n - 1):
    alpha = 1 - (n - 1) * (n - sum_c o[c][c]) / (n^2 - sum_c n_c^2).
    None when nothing is pairable or every pairable value is the same (D_e = 0).
    """
    coincidences: dict[tuple[Hashable, Hashable], float] = defaultdict(float)
    for ratings in _by_item(annotations).values():
        values = list(ratings.values())
        m = len(values)
        if m < 2:
            continue
        for i, c in enumerate(values):
            for j, k in enumerate(values):
                if i != j:
                    coincidences[(c, k)] += 1.0 / (m - 1)
    n = sum(coincidences.values())
    if n <= 1:
        return None
    marginals: dict[Hashable, float] = defaultdict(float)
    for (c, _), weight in coincidences.items():
        marginals[c] += weight
    observed_agree = sum(w for (c, k), w in coincidences.items() if c == k)
    expected_disagree = n * n - sum(v * v for v in marginals.values())
    if expected_disagree <= 1e-12:
        return None
    return 1.0 - (n - 1) * (n - observed_agree) / expected_disagree


def annotator_stats(human: Iterable[Annotation]) -> list[AnnotatorStats]:
    """Per annotator: labels given, and agreement with the leave-one-out majority of the others."""
    items = _by_item(human)
    n_labels: Counter[str] = Counter()
    compared: Counter[str] = Counter()
    agreed: Counter[str] = Counter()
    for ratings in items.values():
        for annotator, value in ratings.items():
            n_labels[annotator] += 1
            others = _plurality(v for r, v in ratings.items() if r != annotator)
            if others is not None:
                compared[annotator] += 1
                agreed[annotator] += value == others
    return [
        AnnotatorStats(a, n_labels[a], compared[a], agreed[a] / compared[a] if compared[a] else None)
        for a in sorted(n_labels)
    ]


def agreement_report(human: Iterable[Annotation], judges: Iterable[Annotation] = ()) -> AgreementReport:
    """Everything above for one set of human and judge labels."""
    human = list(human)
    items = _by_item(human)
    return AgreementReport(
        n_items=len(items),
        n_with_majority=len(majority_labels(human)),
        n_multiply_annotated=sum(1 for r in items.values() if len(r) >= 2),
        krippendorff_alpha=krippendorff_alpha_nominal(human),
        judges=judge_agreement(judges, human),
        annotators=annotator_stats(human),
    )


def annotations_from_mapping(labels: Mapping[str, Mapping[str, Hashable]]) -> list[Annotation]:
    """item -> rater -> value, flattened into `Annotation`s (handy for tests and callers)."""
    return [Annotation(item, rater, value) for item, ratings in labels.items() for rater, value in ratings.items()]

