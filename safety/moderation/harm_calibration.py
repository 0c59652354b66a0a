"""Choosing the harm classifier's per-category thresholds on held-out predictions.

`safety.moderation.harm_classifier` trains a model, then asks this module for a threshold per harm
category: every hand-written sentence (seed sentences and reviewer examples) is scored by a model
trained without its fold, and each category gets the lowest threshold at which its flags are
precise enough and flag few enough safe sentences. Template texts never go to validation: each has
near-copies in training, so their held-out scores would make any threshold look precise.

This module knows nothing about features or artifacts; it takes a model factory, a matrix and
labels, and returns thresholds with the figures behind them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.base import ClassifierMixin

from safety.moderation.harm_seed import SAFE_LABEL

__all__ = [
    "DEFAULT_MAX_FALSE_POSITIVE_RATE",
    "DEFAULT_TARGET_PRECISION",
    "N_FOLDS",
    "calibrate_thresholds",
    "folds",
    "out_of_fold",
]

DEFAULT_TARGET_PRECISION = 0.9
# Per category; four categories at 0.5% keep the share of harmless texts flagged under 2%.
DEFAULT_MAX_FALSE_POSITIVE_RATE = 0.005
# The thresholds searched. Below 0.2 a category would be flagged on almost no evidence; above 0.95
# it would practically never be.
THRESHOLD_GRID = np.round(np.arange(0.20, 0.951, 0.01), 2)
# Four folds gave slightly lower thresholds (better recall) but took a training past two seconds
# of CPU: the model is fitted once per fold and once on everything.
N_FOLDS = 3
MIN_POSITIVES = 5  # fewer and a precision estimate means nothing: the category keeps the default


def folds(texts: Sequence[str], sentence: np.ndarray, seed: int) -> np.ndarray:
    """A fold number (0 .. N_FOLDS-1) per sentence, -1 for template texts, which always train.

    The fold depends only on the text and `seed`, so a retrain that adds reviewer examples keeps
    every seed sentence in its fold and its thresholds stay comparable with the previous version's.
    """
    def fold(text: str) -> int:
        digest = hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % N_FOLDS

    return np.array([fold(t) if s else -1 for t, s in zip(texts, sentence, strict=True)])


def out_of_fold(
    make_model: Callable[[], ClassifierMixin],
    matrix: csr_matrix,
    labels: np.ndarray,
    fold_of: np.ndarray,
    weights: np.ndarray,
    classes: np.ndarray,
) -> np.ndarray:
    """Probabilities (columns in `classes` order) for every sentence from a model (a fresh
    `make_model()`) that did not see it; rows of template texts stay 0. A class missing from a
    fold's training part gets probability 0 there."""
    out = np.zeros((len(labels), len(classes)))
    for k in range(N_FOLDS):
        test = fold_of == k
        train_classes = np.unique(labels[~test])
        if not test.any() or len(train_classes) < 2:
            continue
        # A cold start on purpose: warm-starting from the final model, which saw this fold, leaks its
        # labels into a fit stopped at a loose tolerance, and the thresholds came out far too low.
        model = make_model()
        model.fit(matrix[~test], labels[~test], sample_weight=weights[~test])
        columns = np.searchsorted(classes, model.classes_)
        out[np.ix_(test, columns)] = model.predict_proba(matrix[test])
    return out


def calibrate_thresholds(
    probabilities: np.ndarray,
    classes: Sequence[str],
    labels: Sequence[str],
    target_precision: float,
    max_false_positive_rate: float = DEFAULT_MAX_FALSE_POSITIVE_RATE,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Per harm category, the lowest grid threshold at which that category's flags reach
    `target_precision` and flag at most `max_false_positive_rate` of the safe texts (or, when no
    threshold does both, the grid's highest), and the figures behind it. Categories with fewer
    than a handful of positive examples are left out.

    Precision counts a flag as right when the text is harmful at all: a false flag costs a
    reviewer's time on a harmless text, while a threat flagged as harassment rather than violence
    is still a text a reviewer must see. Recall is per category. The false-positive budget is what
    the product needs: precision alone depends on how many harmful texts the validation set holds
    (far more than real traffic), while the share of safe texts flagged does not.

    Example:
        >>> probabilities = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8], [0.1, 0.9]] * 3)
        >>> labels = ["safe", "safe", "safe", "violence", "violence"] * 3
        >>> calibrate_thresholds(probabilities, ["safe", "violence"], labels, 0.9, 0.2)[0]
        {'violence': 0.71}
    """
    truth = np.asarray(labels)
    safe = truth == SAFE_LABEL
    thresholds: dict[str, float] = {}
    report: dict[str, dict[str, float]] = {}
    for column, category in enumerate(classes):
        positives = truth == category
        if category == SAFE_LABEL or positives.sum() < MIN_POSITIVES:
            continue
        scores = probabilities[:, column]
        chosen = float(THRESHOLD_GRID[-1])
        for threshold in THRESHOLD_GRID:
            flagged = scores >= threshold
            precision = (flagged & ~safe).sum() / max(flagged.sum(), 1)
            false_positive_rate = (flagged & safe).sum() / max(safe.sum(), 1)
            if precision >= target_precision and false_positive_rate <= max_false_positive_rate:
                chosen = float(threshold)
                break
        flagged = scores >= chosen
        thresholds[category] = chosen
        report[category] = {
            "threshold": chosen,
            "precision": round(float((flagged & ~safe).sum() / max(flagged.sum(), 1)), 4),
            "recall": round(float((flagged & positives).sum() / positives.sum()), 4),
            "false_positive_rate": round(float((flagged & safe).sum() / max(safe.sum(), 1)), 4),
            "n_positive": int(positives.sum()),
            "n_safe": int(safe.sum()),
        }
    return thresholds, report
