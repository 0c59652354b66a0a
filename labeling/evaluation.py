"""How well a judge agrees with human preference labels, and how consistent it is across orders.

Human pairs come as (chosen, rejected). Each becomes a comparison whose response A is the chosen
one for a seeded random half of the pairs and the rejected one for the other half, so that a judge
which always answers "A" scores 50%, not 100%. The judge labels every comparison through the usual
chain (both orders), and the evaluation reports:

- `agreement`: labels equal to the human choice / labeled pairs (a tie counts as a miss);
- `agreement_ties_half`: the same with a tie worth half (a coin flip's expected score);
- `agreement_decided`: agreement among the non-tie labels, and `coverage`, their share;
- `consistency_rate`: share of pairs whose two orders agreed.

This module does not define inter-annotator statistics (that is `labeling.agreement`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from labeling.chain import FallbackChain
from labeling.runner import label_comparisons
from labeling.verdicts import Choice, Comparison, Label
from reward_models.pairs import PreferencePair, read_pairs


@dataclass(frozen=True)
class HumanLabeled:
    comparison: Comparison
    human: Choice  # "a" or "b"


def comparisons_from_pairs(pairs: Sequence[PreferencePair], *, seed: int = 0) -> list[HumanLabeled]:
    """Comparisons with A/B assigned at random (seeded) and the human choice remembered."""
    rng = random.Random(seed)
    items = []
    for index, pair in enumerate(pairs):
        chosen_first = rng.random() < 0.5
        a, b = (pair.chosen, pair.rejected) if chosen_first else (pair.rejected, pair.chosen)
        comparison = Comparison(f"pair-{index}", pair.prompt_text(), a, b)
        items.append(HumanLabeled(comparison, "a" if chosen_first else "b"))
    return items


@dataclass(frozen=True)
class JudgeEvaluation:
    judges: list[str]
    pairs: int
    labeled: int
    failed: int
    agreement: float | None
    agreement_ties_half: float | None
    agreement_decided: float | None
    coverage: float | None
    consistency_rate: float | None
    labels_by_judge: dict[str, int]
    cost_usd: float
    elapsed_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_labels(labels: Sequence[Label], humans: dict[str, Choice]) -> dict[str, float | None]:
    """Agreement figures of labels against human choices keyed by comparison id."""
    n = len(labels)
    if n == 0:
        return {"agreement": None, "agreement_ties_half": None, "agreement_decided": None,
                "coverage": None, "consistency_rate": None}
    matches = sum(1 for label in labels if label.choice == humans[label.comparison_id])
    ties = sum(1 for label in labels if label.choice == "tie")
    decided = n - ties
    return {
        "agreement": matches / n,
        "agreement_ties_half": (matches + 0.5 * ties) / n,
        "agreement_decided": matches / decided if decided else None,
        "coverage": decided / n,
        "consistency_rate": sum(1 for label in labels if label.consistent) / n,
    }


async def evaluate_chain(
    chain: FallbackChain, items: Sequence[HumanLabeled], *, concurrency: int = 4, progress: bool = False
) -> JudgeEvaluation:
    report = await label_comparisons(
        [item.comparison for item in items], chain, concurrency=concurrency, progress=progress
    )
    humans = {item.comparison.id: item.human for item in items}
    by_judge: dict[str, int] = {}
    for label in report.labels:
        by_judge[label.judge] = by_judge.get(label.judge, 0) + 1
    return JudgeEvaluation(
        judges=chain.names,
        pairs=len(items),
        labeled=len(report.labels),
        failed=len(report.failures),
        labels_by_judge=by_judge,
        cost_usd=report.cost_usd,
        elapsed_s=report.elapsed_s,
        **score_labels(report.labels, humans),  # type: ignore[arg-type]
    )


def load_human_comparisons(path: Path | str, *, limit: int | None = None, seed: int = 0) -> list[HumanLabeled]:
    """The pairs of a file (any format `read_pairs` reads) as comparisons with their human choice."""
    if limit is not None and limit < 1:
        raise ValueError("limit must be at least 1")
    pairs = read_pairs(Path(path))
    if not pairs:
        raise ValueError(f"{path} holds no preference pairs")
    return comparisons_from_pairs(pairs[:limit] if limit is not None else pairs, seed=seed)


def evaluate_judge_on_file(
    chain: FallbackChain,
    path: Path | str,
    *,
    limit: int | None = None,
    seed: int = 0,
    concurrency: int = 4,
    progress: bool = False,
) -> JudgeEvaluation:
    """Agreement of `chain` with the human labels of a pairs file, in a fresh event loop.

    Example:
        >>> evaluation = evaluate_judge_on_file(FallbackChain([judge]), "hh.jsonl", limit=50)
        >>> evaluation.agreement, evaluation.consistency_rate
    """
    items = load_human_comparisons(path, limit=limit, seed=seed)
    return asyncio.run(evaluate_chain(chain, items, concurrency=concurrency, progress=progress))
