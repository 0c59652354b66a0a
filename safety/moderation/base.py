"""The contract every moderation provider keeps, and the result it returns.

A provider classifies a batch of texts and returns one `ModerationResult` per text, or raises
`ProviderError` when it cannot answer (timeout, HTTP error, malformed reply). It never decides what
to do about a flag: turning scores into allow/escalate/block is `safety.verdict`'s job, and choosing
which provider answers (primary, fallback) is `safety.moderation.chain`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

__all__ = ["ModerationProvider", "ModerationResult", "ProviderError"]


@dataclass(frozen=True)
class ModerationResult:
    """What one provider said about one text.

    `scores` holds a probability-like value in [0, 1] per category the provider knows;
    `categories` holds the names of the categories the provider itself flagged (with its own
    thresholds), so `flagged` is true exactly when `categories` is non-empty.
    """

    provider: str
    flagged: bool
    categories: tuple[str, ...] = ()
    scores: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.flagged != bool(self.categories):
            raise ValueError(
                f"{self.provider}: flagged={self.flagged} but categories={list(self.categories)}"
            )

    def top_score(self) -> float:
        return max(self.scores.values(), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "flagged": self.flagged,
            "categories": list(self.categories),
            "scores": dict(self.scores),
        }


class ProviderError(Exception):
    """A provider could not answer. `kind` is one of timeout, connection, http, malformed, config."""

    def __init__(self, provider: str, kind: str, message: str) -> None:
        super().__init__(f"{provider}: {kind}: {message}")
        self.provider = provider
        self.kind = kind
        self.message = message


@runtime_checkable
class ModerationProvider(Protocol):
    """Classifies texts. Implementations must return exactly one result per input, in order."""

    name: str

    def classify(self, texts: Sequence[str]) -> list[ModerationResult]: ...


def flagged_result(provider: str, scores: dict[str, float], threshold: float) -> ModerationResult:
    """Build a result that flags every category whose score reaches `threshold`."""
    categories = tuple(sorted(c for c, s in scores.items() if s >= threshold))
    return ModerationResult(provider=provider, flagged=bool(categories), categories=categories, scores=scores)
