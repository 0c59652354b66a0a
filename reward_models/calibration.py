"""Calibration of reward differences into preference probabilities.

A Bradley-Terry reward model says P(a preferred to b) = sigmoid(r_a - r_b), but a model trained
for a few epochs on a small set is usually over- or under-confident. Temperature scaling fits one
number T on held-out pairs so that sigmoid((r_a - r_b) / T) matches how often the model is right;
it never changes which response wins, so accuracy is untouched.

Calibration error is the usual expected calibration error (ECE) of the *predicted winner*: the
confidence max(p, 1 - p) against whether that prediction was right, in equal-width bins. (Taking
p itself against "the chosen one won" would be degenerate: every held-out label is 1.)

This module works on arrays; it does not run models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit

__all__ = ["Calibration", "calibrate", "expected_calibration_error", "fit_temperature", "preference_nll"]

# T is searched on a log scale in [e^-6, e^6]: beyond that the probabilities are all 0.5 or all 0/1.
_LOG_T_BOUNDS = (-6.0, 6.0)


def _as_arrays(diffs, labels) -> tuple[np.ndarray, np.ndarray]:
    d = np.asarray(diffs, dtype=np.float64).ravel()
    y = np.ones_like(d) if labels is None else np.asarray(labels, dtype=np.float64).ravel()
    if d.shape != y.shape:
        raise ValueError(f"{d.size} reward differences but {y.size} labels")
    if not np.all(np.isfinite(d)):
        raise ValueError("reward differences contain NaN or infinity")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 0 or 1 (1: the first response is preferred)")
    return d, y


def preference_nll(diffs, temperature: float = 1.0, labels=None) -> float:
    """Mean negative log-likelihood of the labels under sigmoid(diff / temperature)."""
    d, y = _as_arrays(diffs, labels)
    if d.size == 0:
        return float("nan")
    z = d / temperature
    return float(-np.mean(y * log_expit(z) + (1 - y) * log_expit(-z)))


def fit_temperature(diffs, labels=None) -> float:
    """The T minimising the NLL of ``labels`` (default: all 1, "the first one won") on ``diffs``.

    Example:
        >>> round(fit_temperature([2.0, 2.0, 2.0, -2.0]), 2)  # right 3 times in 4 at |d| = 2
        1.82
    """
    d, y = _as_arrays(diffs, labels)
    if d.size == 0 or not np.any(d):
        return 1.0  # nothing to learn from: keep the model's own scale
    result = minimize_scalar(
        lambda log_t: preference_nll(d, float(np.exp(log_t)), y), bounds=_LOG_T_BOUNDS, method="bounded"
    )
    return float(np.exp(result.x))


def expected_calibration_error(probs, labels=None, n_bins: int = 10) -> float:
    """Top-label ECE of binary predictions ``probs`` = P(first preferred) against ``labels``."""
    p, y = _as_arrays(probs, labels)
    if p.size == 0:
        return float("nan")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must be in [0, 1]")
    predicted_first = p >= 0.5
    confidence = np.where(predicted_first, p, 1 - p)
    correct = (predicted_first == (y == 1)).astype(np.float64)
    # confidence lies in [0.5, 1]; bin that range so no bin is empty by construction.
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = which == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(ece)


@dataclass(frozen=True)
class Calibration:
    """Fitted temperature and the calibration figures before/after, on ``n`` pairs."""

    temperature: float
    ece_before: float
    ece_after: float
    nll_before: float
    nll_after: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(diffs, labels=None, n_bins: int = 10) -> Calibration:
    """Fit a temperature on held-out reward differences and report ECE/NLL before and after."""
    d, y = _as_arrays(diffs, labels)
    t = fit_temperature(d, y)
    return Calibration(
        temperature=t,
        ece_before=expected_calibration_error(expit(d), y, n_bins),
        ece_after=expected_calibration_error(expit(d / t), y, n_bins),
        nll_before=preference_nll(d, 1.0, y),
        nll_after=preference_nll(d, t, y),
        n=int(d.size),
    )
