"""The sequential canary test: known answers for the statistic, A/A under a check after every outcome, a real drop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policies.canary import (
    always_valid_p,
    analyse_canary,
    confidence_sequence,
    log_mixture_lr,
    mean_and_variance,
    rate_and_variance,
    rollback_mask,
)
from policies.rollout import ArmStats, CanaryThresholds


def test_mixture_likelihood_ratio_known_answer():
    """One tau = 1, V = 1, d = 2: Lambda = sqrt(1/2) * exp(1 * 4 / (2 * 1 * 2)) = e / sqrt(2) = 1.92211...,
    so the always-valid p-value is sqrt(2) / e = 0.52026. At d = 0 Lambda = sqrt(1/2) < 1: p = 1."""
    assert math.exp(float(log_mixture_lr(2.0, 1.0, 0.0, [1.0]))) == pytest.approx(math.e / math.sqrt(2))
    assert float(always_valid_p(2.0, 1.0, [1.0])) == pytest.approx(math.sqrt(2) / math.e)
    assert float(always_valid_p(0.0, 1.0, [1.0])) == 1.0
    # An equal-weight mixture is the mean of its components' ratios.
    both = math.exp(float(log_mixture_lr(2.0, 1.0, 0.0, [1.0, 3.0])))
    three = math.sqrt(1 / 10) * math.exp(9 * 4 / (2 * 1 * 10))
    assert both == pytest.approx((math.e / math.sqrt(2) + three) / 2)


def test_confidence_sequence_closed_form_for_one_tau():
    """With one tau the interval is closed form: Lambda(theta) = 1/alpha at
    (d - theta)^2 = V (V + tau^2) / tau^2 * (2 log(1/alpha) + log((V + tau^2) / V)).
    V = tau^2 = 1, alpha = 0.05: h = sqrt(2 * (2 log 20 + log 2)) = 3.65639."""
    low, high = confidence_sequence(0.5, 1.0, [1.0], 0.05)
    h = math.sqrt(2 * (2 * math.log(20) + math.log(2)))
    assert (low, high) == pytest.approx((0.5 - h, 0.5 + h), abs=1e-9)
    assert h == pytest.approx(3.65639, abs=1e-5)


def test_variance_helpers():
    mean, var = mean_and_variance(4, 2.0, 1.5)  # rewards 0, 0.5, 0.5, 1: mean 0.5, var (1.5 - 1) / 3
    assert (float(mean), float(var)) == pytest.approx((0.5, 1 / 6))
    rate, var = rate_and_variance(0, 8)  # no blocks yet: still (1/10)(9/10) of uncertainty
    assert (float(rate), float(var)) == pytest.approx((0.0, 0.09))


def _arm(rewards, blocks) -> ArmStats:
    rewards = np.asarray(rewards, float)
    return ArmStats(len(blocks), int(np.sum(blocks)), len(rewards), float(rewards.sum()), float((rewards**2).sum()))


T = CanaryThresholds(min_decisions=100, min_outcomes=100, max_block_rate_increase=0.05, max_reward_drop=0.05)


def test_verdicts_worse_not_worse_and_continue():
    rng = np.random.default_rng(0)
    active = _arm(rng.beta(16, 4, 20_000), rng.random(20_000) < 0.02)  # mean reward 0.8, 2% blocked
    same = analyse_canary(active, _arm(rng.beta(16, 4, 5_000), rng.random(5_000) < 0.02), T)
    assert same.decision == "promote" and not same.rollback  # tight interval inside both margins
    assert all(t.status == "not_worse" for t in same.tests)
    assert same.tests[0].ci_low < 0 < same.tests[0].ci_high and same.tests[0].p_value > 0.05

    early = analyse_canary(active, _arm(rng.random(150) < 0.8, rng.random(150) < 0.02), T)  # 0/1 rewards: noisy
    assert early.decision == "continue" and early.tests[0].status == "inconclusive"  # nothing shown either way yet

    worse = analyse_canary(active, _arm(rng.beta(14, 6, 2_000), rng.random(2_000) < 0.02), T)  # mean 0.7
    assert worse.decision == "rollback" and "mean reward" in worse.reasons[0]
    reward = worse.tests[0]
    assert reward.ci_high < 0 and reward.effect == pytest.approx(-0.1, abs=0.02) and reward.p_value < 0.025

    blocked = analyse_canary(active, _arm(rng.beta(16, 4, 2_000), rng.random(2_000) < 0.08), T)
    assert blocked.decision == "rollback" and "block rate" in blocked.reasons[0]

    burn_in = analyse_canary(active, _arm(rng.beta(2, 8, 50), [True] * 50), T)
    assert burn_in.decision == "continue" and {t.status for t in burn_in.tests} == {"burn_in"}


def test_a_catastrophic_canary_is_caught_within_the_burn_in_it_needs():
    """Five escalations in five decisions against none in twenty: the wide mixing scale calls it at once."""
    fast = CanaryThresholds(min_decisions=5, min_outcomes=100)
    verdict = analyse_canary(ArmStats(20, 0), ArmStats(5, 5), fast)
    assert verdict.rollback and "block rate" in verdict.reasons[0]


def _simulate(rng, runs, steps, share, mean_active, mean_canary, thresholds):
    """Beta rewards (sd ~0.09 around 0.8), 3% blocks in both arms, a check after every outcome: the first
    rollback per run (or -1)."""
    is_canary = rng.random((runs, steps)) < share
    mean = np.where(is_canary, mean_canary, mean_active)
    reward = rng.beta(mean * 20, (1 - mean) * 20)
    blocked = rng.random((runs, steps)) < 0.03

    def sums(mask):
        n = np.cumsum(mask, axis=1)
        return {"decisions": n, "outcomes": n, "safety_blocks": np.cumsum(blocked & mask, axis=1),
                "reward_sum": np.cumsum(reward * mask, axis=1), "reward_sq_sum": np.cumsum(reward**2 * mask, axis=1)}

    fired = rollback_mask(sums(~is_canary), sums(is_canary), thresholds)
    return np.where(fired.any(axis=1), fired.argmax(axis=1), -1), sums(~is_canary), sums(is_canary)


def test_aa_false_rollbacks_stay_under_alpha_with_a_check_after_every_outcome():
    """200 equal-policy runs of 3,000 outcomes, checked after each: the sequential test rolls back at most alpha of
    them; the fixed rule at a margin of 0.02 (checked the same way) rolls back far more."""
    seq = CanaryThresholds(min_decisions=50, min_outcomes=50, max_block_rate_increase=0.02, max_reward_drop=0.02)
    first, _, _ = _simulate(np.random.default_rng(7), 200, 3_000, 0.3, 0.8, 0.8, seq)
    assert (first >= 0).mean() <= 0.05
    fixed = CanaryThresholds(min_decisions=50, min_outcomes=50, max_block_rate_increase=0.02, max_reward_drop=0.02,
                             method="fixed")
    first_fixed, _, _ = _simulate(np.random.default_rng(7), 200, 3_000, 0.3, 0.8, 0.8, fixed)
    assert (first_fixed >= 0).mean() > 0.2


def test_a_real_drop_is_detected_and_the_vectorised_rule_matches_the_verdict():
    """A 5-point reward drop is rolled back in every run; at the first firing check, the scalar verdict agrees."""
    rng = np.random.default_rng(3)
    first, active, canary = _simulate(rng, 20, 4_000, 0.3, 0.8, 0.75, T)
    assert (first >= 0).all()
    for run in range(3):
        for step, expect in ((first[run], True), (first[run] - 1, False)):
            stats = [ArmStats(*(int(arm[k][run, step]) if k in ("decisions", "outcomes", "safety_blocks")
                                else float(arm[k][run, step])
                                for k in ("decisions", "safety_blocks", "outcomes", "reward_sum", "reward_sq_sum")))
                     for arm in (active, canary)]
            assert analyse_canary(stats[0], stats[1], T).rollback is expect


def test_the_fixed_method_is_still_available():
    verdict = analyse_canary(ArmStats(1000, 10, 500, 400.0), ArmStats(300, 3, 200, 140.0),
                             CanaryThresholds(method="fixed"))
    assert verdict.rollback and verdict.decision == "rollback" and verdict.tests == ()
    with pytest.raises(ValueError, match="sequential"):
        CanaryThresholds(method="bayes")
