"""Canary versus control with a sequential test that stays valid when it is checked after every outcome.

The statistic is the mixture sequential probability ratio test (mSPRT) of Johari, Koomen, Pekelis and Walsh,
"Always Valid Inference: Continuous Monitoring of A/B Tests" (Operations Research 70(3), 2022), for the difference
of two means. With the canary-minus-control difference of sample means ``d``, its estimated variance
``V = s_c^2 / n_c + s_a^2 / n_a`` and a normal mixing distribution ``N(theta0, tau^2)`` over the true difference,
the likelihood ratio against ``H0: difference = theta0`` is::

    Lambda_tau(theta0) = sqrt(V / (V + tau^2)) * exp( tau^2 (d - theta0)^2 / (2 V (V + tau^2)) )

It is (asymptotically) a nonnegative martingale with mean 1 under H0, so by Ville's inequality
``P(sup_n Lambda >= 1/alpha) <= alpha``: the always-valid p-value is ``min(1, 1/Lambda(0))`` and the always-valid
confidence sequence is ``{theta : Lambda(theta) < 1/alpha}``, an interval ``d +- h`` whatever the number of looks.

One choice of ``tau`` is tuned to one effect size (a small ``tau`` is slow to call a huge effect). We mix over a
grid ``tau = margin * (1, 4, 16)`` with equal weights; an average of mean-1 martingales is one, so the guarantee
holds and both small and catastrophic effects are caught early.

The verdict, per metric (reward: higher is better; block rate: lower is better), each at ``alpha / 2`` so that the
two together falsely roll back with probability at most ``alpha`` over the whole canary:

- **worse** (rollback): the whole interval is on the bad side of 0;
- **not worse** (supports promotion): the whole interval is better than ``-margin`` (non-inferiority);
- otherwise **continue**.

A burn-in (``min_outcomes`` / ``min_decisions``) keeps the normal approximation away from tiny samples. Variances
have floors: a reward sample variance of at least ``1e-4``; a rate's variance from ``(k + 1) / (n + 2)``, so an arm
with no blocks yet still carries uncertainty.

Pure: sufficient statistics in, a verdict out; numpy and scipy only, no models, no I/O. The bench
(``bench/canary_analysis.py``) calls the vectorised functions here with arrays of running sums.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy.special import logsumexp

from policies.rollout import ArmStats, CanaryThresholds, CanaryVerdict, canary_verdict

__all__ = ["TAU_GRID", "MetricTest", "always_valid_p", "analyse_canary", "confidence_sequence", "log_mixture_lr",
           "mean_and_variance", "rate_and_variance", "rollback_mask"]

TAU_GRID = (1.0, 4.0, 16.0)  # mixing scales, in units of the metric's margin
MIN_REWARD_VARIANCE = 1e-4


def log_mixture_lr(diff, var, theta0, taus) -> np.ndarray:
    """log of the equal-weight mixture over ``taus`` of ``Lambda_tau(theta0)`` (formula in the module docstring).

    Vectorised over ``diff``, ``var`` and ``theta0`` (numpy broadcasting)."""
    diff, var, theta0 = np.broadcast_arrays(np.asarray(diff, float), np.asarray(var, float), np.asarray(theta0, float))
    taus2 = np.asarray(taus, float).reshape((-1,) + (1,) * diff.ndim) ** 2
    logs = 0.5 * (np.log(var) - np.log(var + taus2)) + taus2 * (diff - theta0) ** 2 / (2.0 * var * (var + taus2))
    return logsumexp(logs, axis=0) - math.log(len(taus2))


def always_valid_p(diff, var, taus, theta0=0.0) -> np.ndarray:
    """``min(1, 1 / Lambda(theta0))``: valid however often it is looked at."""
    return np.minimum(1.0, np.exp(-log_mixture_lr(diff, var, theta0, taus)))


def confidence_sequence(diff: float, var: float, taus, alpha: float) -> tuple[float, float]:
    """``{theta : Lambda(theta) < 1/alpha}`` = ``diff +- h``; ``h`` by bisection (Lambda grows with ``|diff - theta|``)."""
    target = math.log(1.0 / alpha)

    def excess(h: float) -> float:
        return float(log_mixture_lr(diff, var, diff - h, taus)) - target

    if excess(0.0) >= 0.0:  # cannot happen for alpha < 1 (Lambda at the estimate is < 1); kept for safety
        return diff, diff
    hi = math.sqrt(var) + 1e-12
    while excess(hi) < 0.0:
        hi *= 2.0
    lo = 0.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) < 0.0 else (lo, mid)
    return diff - hi, diff + hi


def mean_and_variance(n, total, sq_total):
    """Sample mean and (unbiased, floored) variance of the mean's numerator, from running sums."""
    n = np.asarray(n, float)
    mean = np.asarray(total, float) / np.maximum(n, 1.0)
    var = (np.asarray(sq_total, float) - n * mean**2) / np.maximum(n - 1.0, 1.0)
    return mean, np.maximum(var, MIN_REWARD_VARIANCE)


def rate_and_variance(k, n):
    """Observed rate ``k/n`` and a Bernoulli variance from ``(k + 1) / (n + 2)`` (never 0)."""
    k, n = np.asarray(k, float), np.asarray(n, float)
    smoothed = (k + 1.0) / (n + 2.0)
    return k / np.maximum(n, 1.0), smoothed * (1.0 - smoothed)


@dataclass(frozen=True)
class MetricTest:
    """One metric of canary versus control: ``effect`` = canary - control."""

    metric: str
    n_canary: int
    n_control: int
    canary: float
    control: float
    effect: float
    ci_low: float  # always-valid interval of the effect at level 1 - alpha
    ci_high: float
    p_value: float  # always-valid p-value of "no difference"
    alpha: float
    margin: float
    higher_is_better: bool
    status: str  # "worse" | "not_worse" | "inconclusive" | "burn_in"

    def as_dict(self) -> dict:
        return asdict(self)


def _test(metric: str, n_c: int, m_c: float, v_c: float, n_a: int, m_a: float, v_a: float, *, margin: float,
          alpha: float, higher_is_better: bool, ready: bool) -> MetricTest:
    effect = m_c - m_a
    if not ready:
        nan = float("nan")
        return MetricTest(metric, n_c, n_a, m_c, m_a, effect, nan, nan, nan, alpha, margin, higher_is_better, "burn_in")
    var = v_c / n_c + v_a / n_a
    taus = [margin * t for t in TAU_GRID]
    low, high = confidence_sequence(effect, var, taus, alpha)
    p = float(always_valid_p(effect, var, taus))
    bad_side = high < 0.0 if higher_is_better else low > 0.0
    within_margin = low > -margin if higher_is_better else high < margin
    status = "worse" if bad_side else "not_worse" if within_margin else "inconclusive"
    return MetricTest(metric, n_c, n_a, m_c, m_a, effect, low, high, p, alpha, margin, higher_is_better, status)


def analyse_canary(active: ArmStats, canary: ArmStats, thresholds: CanaryThresholds = CanaryThresholds()) -> CanaryVerdict:
    """The canary verdict under ``thresholds.method``: ``decision`` is "rollback", "promote" or "continue".

    Sequential: rollback when either metric is worse; promote when both are not worse at their margins
    (``max_reward_drop``, ``max_block_rate_increase``); otherwise continue. Fixed: the raw-delta rule of
    ``policies.rollout.canary_verdict`` (rollback or continue; it never supports promotion on its own)."""
    if thresholds.method == "fixed":
        v = canary_verdict(active, canary, thresholds)
        return CanaryVerdict(v.rollback, v.reasons, v.enough_data, v.details, "rollback" if v.rollback else "continue")
    alpha = thresholds.alpha / 2.0
    m_c, v_c = mean_and_variance(canary.outcomes, canary.reward_sum, canary.reward_sq_sum)
    m_a, v_a = mean_and_variance(active.outcomes, active.reward_sum, active.reward_sq_sum)
    reward = _test("reward", canary.outcomes, float(m_c), float(v_c), active.outcomes, float(m_a), float(v_a),
                   margin=thresholds.max_reward_drop, alpha=alpha, higher_is_better=True,
                   ready=canary.outcomes >= max(thresholds.min_outcomes, 2) and active.outcomes >= 2)
    r_c, w_c = rate_and_variance(canary.safety_blocks, canary.decisions)
    r_a, w_a = rate_and_variance(active.safety_blocks, active.decisions)
    blocks = _test("block_rate", canary.decisions, float(r_c), float(w_c), active.decisions, float(r_a), float(w_a),
                   margin=thresholds.max_block_rate_increase, alpha=alpha, higher_is_better=False,
                   ready=canary.decisions >= max(thresholds.min_decisions, 1) and active.decisions >= 1)
    reasons = []
    if reward.status == "worse":
        reasons.append(f"mean reward {reward.canary:.3f} vs active {reward.control:.3f}: worse (always-valid "
                       f"{1 - alpha:.1%} interval of the difference [{reward.ci_low:.3f}, {reward.ci_high:.3f}], "
                       f"p={reward.p_value:.2g}, n={reward.n_canary})")
    if blocks.status == "worse":
        reasons.append(f"safety block rate {blocks.canary:.3f} vs active {blocks.control:.3f}: worse (always-valid "
                       f"{1 - alpha:.1%} interval of the difference [{blocks.ci_low:.3f}, {blocks.ci_high:.3f}], "
                       f"p={blocks.p_value:.2g}, n={blocks.n_canary})")
    decision = ("rollback" if reasons else
                "promote" if reward.status == blocks.status == "not_worse" else "continue")
    details = {"canary_block_rate": blocks.canary, "active_block_rate": blocks.control,
               "canary_mean_reward": reward.canary if canary.outcomes else math.nan,
               "active_mean_reward": reward.control if active.outcomes else math.nan}
    enough = reward.status != "burn_in" and blocks.status != "burn_in"
    return CanaryVerdict(bool(reasons), tuple(reasons), enough, details, decision, (reward, blocks))


def rollback_mask(active: dict, canary: dict, thresholds: CanaryThresholds) -> np.ndarray:
    """Vectorised "would ``analyse_canary`` roll back here?" over arrays of running sums (for simulations).

    ``active`` / ``canary`` map the ``ArmStats`` field names (decisions, safety_blocks, outcomes, reward_sum,
    reward_sq_sum) to arrays of equal shape. Worse means the interval lies on the bad side of 0, which is the same
    as ``Lambda(0) >= 1/alpha`` with the estimate on the bad side: no interval needs to be searched for."""
    if thresholds.method == "fixed":
        m_c = canary["reward_sum"] / np.maximum(canary["outcomes"], 1)
        m_a = active["reward_sum"] / np.maximum(active["outcomes"], 1)
        r_c = canary["safety_blocks"] / np.maximum(canary["decisions"], 1)
        r_a = active["safety_blocks"] / np.maximum(active["decisions"], 1)
        reward = (canary["outcomes"] >= thresholds.min_outcomes) & (active["outcomes"] > 0) & \
            (m_a - m_c > thresholds.max_reward_drop)
        blocks = (canary["decisions"] >= thresholds.min_decisions) & (active["decisions"] > 0) & \
            (r_c - r_a > thresholds.max_block_rate_increase)
        return reward | blocks
    threshold = math.log(2.0 / thresholds.alpha)
    m_c, v_c = mean_and_variance(canary["outcomes"], canary["reward_sum"], canary["reward_sq_sum"])
    m_a, v_a = mean_and_variance(active["outcomes"], active["reward_sum"], active["reward_sq_sum"])
    diff, var = m_c - m_a, v_c / np.maximum(canary["outcomes"], 1) + v_a / np.maximum(active["outcomes"], 1)
    taus = [thresholds.max_reward_drop * t for t in TAU_GRID]
    reward = (np.asarray(canary["outcomes"]) >= max(thresholds.min_outcomes, 2)) & (np.asarray(active["outcomes"]) >= 2) \
        & (diff < 0) & (log_mixture_lr(diff, var, 0.0, taus) >= threshold)
    r_c, w_c = rate_and_variance(canary["safety_blocks"], canary["decisions"])
    r_a, w_a = rate_and_variance(active["safety_blocks"], active["decisions"])
    diff, var = r_c - r_a, w_c / np.maximum(canary["decisions"], 1) + w_a / np.maximum(active["decisions"], 1)
    taus = [thresholds.max_block_rate_increase * t for t in TAU_GRID]
    blocks = (np.asarray(canary["decisions"]) >= max(thresholds.min_decisions, 1)) & (np.asarray(active["decisions"]) >= 1) \
        & (diff > 0) & (log_mixture_lr(diff, var, 0.0, taus) >= threshold)
    return reward | blocks
