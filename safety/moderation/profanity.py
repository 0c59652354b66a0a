"""Profanity as a local moderation provider, backed by `alt-profanity-check`.

The package ships its own trained model (a linear SVM over a word vectoriser), so this provider
works offline and needs no setup. It only knows one category, "profanity": swearing is a signal
worth a reviewer's look, not proof of harm, which is why `safety.verdict.ModerationPolicy`
escalates on it but does not block on it alone.

The model is five calibrated linear SVMs (scikit-learn's ``CalibratedClassifierCV`` with sigmoid
calibration). The provider reads their weights once and computes the same probability with two
sparse-dense products, about 7x faster than the package's ``predict_prob`` for one text, whose
time goes to scikit-learn's per-call input checks; it sits on every decision's path. A model of
any other shape falls back to ``predict_prob``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

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
        from profanity_check import predict_prob, profanity_check

        self._predict_prob: Callable[[list[str]], np.ndarray] = (
            _linear_sigmoid_predictor(profanity_check.vectorizer, profanity_check.model) or predict_prob
        )

    def classify(self, texts: Sequence[str]) -> list[ModerationResult]:
        if not texts:
            return []
        probabilities = self._predict_prob(list(texts))
        return [
            flagged_result(self.name, {"profanity": round(float(p), 6)}, self.threshold)
            for p in probabilities
        ]


def _linear_sigmoid_predictor(vectorizer, model) -> Callable[[list[str]], np.ndarray] | None:
    """P(class 1) of a binary ``CalibratedClassifierCV`` of linear models with sigmoid calibration, or None.

    Each calibrated member gives ``expit(-(a * (x . w + c) + b))``; the model's probability is their mean.
    """
    try:
        members = model.calibrated_classifiers_
        if len(model.classes_) != 2 or any(m.method != "sigmoid" for m in members):
            return None
        weights = np.vstack([m.estimator.coef_.reshape(1, -1) for m in members]).T  # features x members
        intercepts = np.array([float(np.ravel(m.estimator.intercept_)[0]) for m in members])
        slopes = np.array([m.calibrators[0].a_ for m in members])
        offsets = np.array([m.calibrators[0].b_ for m in members])
    except (AttributeError, IndexError, TypeError, ValueError):
        return None

    def predict(texts: list[str]) -> np.ndarray:
        decision = np.asarray(vectorizer.transform(texts) @ weights) + intercepts
        return (1.0 / (1.0 + np.exp(slopes * decision + offsets))).mean(axis=1)

    return predict
