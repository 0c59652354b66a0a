"""Temperature scaling and ECE: known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit

from reward_models.calibration import calibrate, expected_calibration_error, fit_temperature, preference_nll


def test_temperature_known_answer():
    """Right 3 times in 4 at |diff| = 2: the NLL optimum has sigmoid(2 / T) = 3/4, so T = 2 / ln 3."""
    assert fit_temperature([2.0, 2.0, 2.0, -2.0]) == pytest.approx(2 / math.log(3), rel=1e-4)


def test_temperature_recovers_the_generating_scale():
    """Labels drawn from sigmoid(d / 3): the fitted temperature is close to 3 and ECE drops."""
    rng = np.random.default_rng(0)
    d = rng.normal(0, 6, 20000)
    y = (rng.random(d.size) < expit(d / 3)).astype(float)
    cal = calibrate(d, y)
    assert cal.temperature == pytest.approx(3.0, rel=0.05)
    assert cal.ece_after < 0.02 < cal.ece_before
    assert cal.nll_after < cal.nll_before


def test_ece_known_answer():
    """Predictions 0.9, 0.9, 0.2, 0.6 with labels 1, 0, 0, 1.

    Top-label confidences 0.9, 0.9, 0.8, 0.6; correct 1, 0, 1, 1. Bins of width 0.05 on [0.5, 1]:
    {0.9, 0.9}: |0.5 - 0.9| = 0.4, weight 1/2; {0.8}: |1 - 0.8| = 0.2; {0.6}: |1 - 0.6| = 0.4.
    ECE = 0.5 * 0.4 + 0.25 * 0.2 + 0.25 * 0.4 = 0.35.
    """
    assert expected_calibration_error([0.9, 0.9, 0.2, 0.6], [1, 0, 0, 1]) == pytest.approx(0.35)


def test_calibration_never_changes_who_wins():
    d = np.array([3.0, -1.0, 0.5, 2.0, -4.0])
    t = fit_temperature(d)
    assert np.array_equal(expit(d / t) > 0.5, d > 0)


def test_degenerate_inputs():
    assert fit_temperature([]) == 1.0 and fit_temperature([0.0, 0.0]) == 1.0
    assert math.isnan(preference_nll([]))
    with pytest.raises(ValueError, match="labels"):
        fit_temperature([1.0], [2])
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature([float("nan")])
    with pytest.raises(ValueError, match="2 reward differences but 1 labels"):
        calibrate([1.0, 2.0], [1])
