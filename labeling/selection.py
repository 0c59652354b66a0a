"""Which comparisons human annotators should see first (active selection within a budget).

Human labels are the scarce resource, so they go where the machine labels are least
trustworthy. The `"uncertainty"` strategy ranks candidates in tiers, most informative first:

1. `inconsistent`: a judge changed its verdict when the two responses swapped places (position
   bias or a coin flip: its label is noise);
2. `disagreement`: the judges that labelled the pair do not agree;
3. `small_margin`: the reward model barely separates the two responses;
4. `unscored`: nothing is known about the pair.

Inside a tier, more inconsistent judges first, then a more even split among judges, then a
smaller reward margin; ties keep the caller's order (e.g. oldest first). `"random"` (seeded) is the baseline an
active strategy should beat, and `"fifo"` keeps the caller's order.

Each selected comparison carries a `priority` (higher = show earlier; Arbiter pushes it as Argilla
metadata so the UI can sort by it) and the `reason` (its tier). This module only ranks: it does
not know which pairs already have human labels (the caller leaves those out) and reads no store.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["STRATEGIES", "Candidate", "Selected", "Strategy", "select_for_annotation"]

Strategy = Literal["uncertainty", "random", "fifo"]
STRATEGIES: tuple[str, ...] = ("uncertainty", "random", "fifo")

_TIERS = ("inconsistent", "disagreement", "small_margin", "unscored")


@dataclass(frozen=True)
class Candidate:
    """What is known about one comparison that humans could label."""

    comparison_id: str
    judge_choices: Mapping[str, str] = field(default_factory=dict)  # judge -> "a" | "b" | "tie"
    inconsistent_judges: int = 0  # judges whose verdict flipped when the order was swapped
    reward_margin: float | None = None  # |r(a) - r(b)| from the reward model, if scored

    def __post_init__(self) -> None:
        if self.inconsistent_judges < 0:
            raise ValueError("inconsistent_judges cannot be negative")
        if self.reward_margin is not None and self.reward_margin != self.reward_margin:  # NaN
            raise ValueError(f"reward_margin is NaN for {self.comparison_id}")

    @property
    def disagreement(self) -> float:
        """0 when all judges agree (or fewer than two judged), up to 1 for an even split."""
        votes = list(self.judge_choices.values())
        if len(votes) < 2:
            return 0.0
        top = Counter(votes).most_common(1)[0][1]
        kinds = min(len(votes), 3)  # at most three possible answers: a, b, tie
        return (1.0 - top / len(votes)) / (1.0 - 1.0 / kinds)

    @property
    def tier(self) -> str:
        if self.inconsistent_judges > 0:
            return "inconsistent"
        if self.disagreement > 0:
            return "disagreement"
        if self.reward_margin is not None:
            return "small_margin"
        return "unscored"


@dataclass(frozen=True)
class Selected:
    comparison_id: str
    rank: int  # 0 = show first
    priority: float  # higher = show earlier (budget - rank)
    reason: str  # the candidate's tier, or the strategy name for random / fifo


def _uncertainty_key(candidate: Candidate) -> tuple:
    margin = abs(candidate.reward_margin) if candidate.reward_margin is not None else float("inf")
    return (_TIERS.index(candidate.tier), -candidate.inconsistent_judges, -candidate.disagreement, margin)


def select_for_annotation(
    candidates: Sequence[Candidate],
    budget: int,
    strategy: Strategy = "uncertainty",
    seed: int = 0,
) -> list[Selected]:
    """The `budget` comparisons to show first, best first.

    Example: with one pair a judge labelled inconsistently, one the judges disagree on and one
    with reward margin 0.1, "uncertainty" returns them in exactly that order.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    ids = [str(c.comparison_id) for c in candidates]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate comparison ids among candidates")

    if strategy == "uncertainty":
        ordered = sorted(candidates, key=_uncertainty_key)  # stable: ties keep the caller's order
    elif strategy == "random":
        ordered = list(candidates)
        random.Random(seed).shuffle(ordered)
    else:
        ordered = list(candidates)

    chosen = ordered[:budget]
    return [
        Selected(
            comparison_id=str(c.comparison_id),
            rank=rank,
            priority=float(len(chosen) - rank),
            reason=c.tier if strategy == "uncertainty" else strategy,
        )
        for rank, c in enumerate(chosen)
    ]
