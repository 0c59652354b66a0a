"""One moderation report read the way OpenAI's `/v1/moderations` reads: `flagged`, a flag and a
score for every OpenAI category, plus what Arbiter knows beyond them.

The chain's report holds one result per provider that decided (a remote harm provider or the local
ones, and the detectors). This module folds them into one answer per text:

- `category_scores[c]`: the highest score any provider gave OpenAI category `c` (0 when none scores
  it); `categories[c]`: whether any provider flagged it;
- `flagged`: whether the decision path would act on this moderation, i.e. whether
  `safety.verdict.moderation_reasons` gives any reason for it under the layer's `ModerationPolicy`
  at the given stage. So a prompt injection flags (OpenAI has no category for it), while plain
  profanity in a user's input does not (the shipped policy ignores it there, as OpenAI does);
- `other_categories` / `other_scores`: the flagged categories and scores outside OpenAI's taxonomy
  (prompt injection, profanity, a guard model's hazards such as `privacy`);
- `unsafe_score`: the highest score among the categories the policy counts, the ranking score of
  "any unsafe" for `safety.moderation.evaluation`.

It runs nothing and decides nothing the policy does not already decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from safety.moderation.chain import ModerationReport
from safety.moderation.taxonomy import OPENAI_CATEGORIES
from safety.verdict import ModerationPolicy, moderation_reasons, most_severe

__all__ = ["OPENAI_CATEGORIES", "ModerationSummary", "summarize"]


@dataclass(frozen=True)
class ModerationSummary:
    """One text's moderation in OpenAI's shape, with Arbiter's provenance."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    unsafe_score: float
    outcome: str  # what moderation alone would make of the text: allow | escalate | block
    other_categories: tuple[str, ...] = ()
    other_scores: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # ModerationReport.to_dict()
    scored: frozenset[str] = frozenset()  # the categories some provider gave a score (others read 0)

    def all_scores(self) -> dict[str, float]:
        return {**self.other_scores, **self.category_scores}

    def flagged_categories(self) -> set[str]:
        return {c for c, flag in self.categories.items() if flag} | set(self.other_categories)


def summarize(report: ModerationReport, policy: ModerationPolicy, stage: str = "input") -> ModerationSummary:
    """Fold a report into OpenAI's shape (see the module docstring).

    Example:
        >>> from safety.moderation.base import ModerationResult
        >>> result = ModerationResult("openai", True, ("violence",), {"violence": 0.95, "hate": 0.1})
        >>> summary = summarize(ModerationReport((result,), ("openai",), False), ModerationPolicy())
        >>> summary.flagged, summary.categories["violence"], summary.category_scores["hate"], summary.outcome
        (True, True, 0.1, 'block')
    """
    scores: dict[str, float] = {}
    flagged: set[str] = set()
    for result in report.results:
        flagged.update(result.categories)
        for category, score in result.scores.items():
            scores[category] = max(scores.get(category, 0.0), float(score))
    reasons = moderation_reasons(report, policy, stage)
    counted = [s for c, s in scores.items() if policy.outcome(c, s, stage) is not None]
    return ModerationSummary(
        flagged=bool(reasons),
        categories={c: c in flagged for c in OPENAI_CATEGORIES},
        category_scores={c: round(scores.get(c, 0.0), 6) for c in OPENAI_CATEGORIES},
        unsafe_score=round(max(counted, default=0.0), 6),
        outcome=most_severe(r.outcome for r in reasons).value,
        other_categories=tuple(sorted(flagged.difference(OPENAI_CATEGORIES))),
        other_scores={c: round(s, 6) for c, s in sorted(scores.items()) if c not in OPENAI_CATEGORIES},
        report=report.to_dict(),
        scored=frozenset(scores),
    )
