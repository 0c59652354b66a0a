"""Profanity as a local moderation provider, backed by `alt-profanity-check`.

The package ships its own trained model (a linear SVM over a word vectoriser), so this provider
works offline and needs no setup. It only knows one category, "profanity": swearing is a signal
worth a reviewer's look, not proof of harm, which is why `safety.verdict.ModerationPolicy`
escalates on it but does not block on it alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from safety.moderation.base import ModerationResult, flagged_result

__all__ = ["ProfanityModeration"]


class ProfanityModeration:
    """Scores each text's probability of being profane.

    Example:
        >>> ProfanityModeration().classify(["have a nice day"])[0].flagged
        False
    """

    name = "profanity"

    def __init__(self, threshold: float = 0.8) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        # Imported lazily: the package unpickles its model at import time (~1 s).
        from profanity_check import predict_prob

        self._predict_prob = predict_prob

    def classify(self, texts: Sequence[str]) -> list[ModerationResult]:
        if not texts:
            return []
        probabilities = self._predict_prob(list(texts))
        return [
            flagged_result(self.name, {"profanity": round(float(p), 6)}, self.threshold)
            for p in probabilities
        ]
