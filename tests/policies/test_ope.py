"""Off-policy estimators on synthetic logs whose true value is known exactly.

Contexts are fixed; each replicate redraws the logging policy's actions and Bernoulli rewards. The target policy's
true value on these contexts is ``mean_i sum_a pi(a|x_i) q(x_i, a)``, so unbiasedness is checked directly:
the average estimate over replicates must sit within a few standard errors of it.
"""

from __future__ import annotations

import numpy as np
import pytest

from policies.ope import LoggedDecisions, doubly_robust, evaluate, fit_reward_model, ips, snips

K, D = 4, 5


def _softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    n = 800
    x = rng.normal(size=(n, D))
    q = 1 / (1 + np.exp(-(x @ rng.normal(size=(D, K)))))  # true mean reward of each action
    logging = 0.8 * _softmax(x @ rng.normal(size=(D, K))) + 0.2 / K  # exploring logging policy
    target = _softmax(3.0 * (x @ rng.normal(size=(D, K))))  # a different, sharper policy
    true_value = float(np.mean(np.sum(target * q, axis=1)))
    return x, q, logging, target, true_value


def _replicate(world, seed):
    x, q, logging, target, _ = world
    rng = np.random.default_rng(seed)
    u = rng.random(len(x))[:, None]
    actions = (u > np.cumsum(logging, axis=1)).sum(axis=1)
    rows = np.arange(len(x))
    rewards = (rng.random(len(x)) < q[rows, actions]).astype(float)
    return LoggedDecisions(actions, logging[rows, actions], rewards, target, features=x)


def test_ips_and_dr_are_unbiased(world):
    true_value = world[-1]
    ips_values, dr_wrong, dr_ridge, snips_values = [], [], [], []
    for seed in range(300):
        logs = _replicate(world, seed)
        ips_values.append(ips(logs))
        snips_values.append(snips(logs))
        # A deliberately wrong reward model: DR stays unbiased because the propensities are right.
        dr_wrong.append(doubly_robust(logs, np.full((logs.n, K), 0.5)))
        if seed < 60:
            dr_ridge.append(doubly_robust(logs, fit_reward_model(logs, kind="ridge", seed=seed)))
    for name, values in [("ips", ips_values), ("dr_wrong_q", dr_wrong), ("dr_ridge", dr_ridge), ("snips", snips_values)]:
        values = np.asarray(values)
        se = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - true_value) < 4 * se + 0.003, name
    # the point of DR: a decent reward model cuts the variance
    assert np.std(dr_ridge) < np.std(ips_values[:60])


def test_bootstrap_intervals_cover_the_true_value(world):
    true_value = world[-1]
    covered = {"ips": 0, "snips": 0, "dr": 0}
    reps = 60
    for seed in range(reps):
        report = evaluate(_replicate(world, 1000 + seed), n_bootstrap=200, seed=seed)
        for name, est in report.estimates.items():
            assert est.ci_low <= est.value <= est.ci_high
            covered[name] += est.ci_low <= true_value <= est.ci_high
    for name, hits in covered.items():
        assert hits / reps >= 0.85, (name, hits)


def test_report_fields(world):
    logs = _replicate(world, 7)
    report = evaluate(logs, estimators=("ips", "dr"), reward_model="mean", n_bootstrap=50)
    assert set(report.estimates) == {"ips", "dr"}
    assert report.n == logs.n and 0 < report.effective_sample_size <= logs.n
    assert report.max_weight == pytest.approx(logs.weights.max())
    assert report.logged_mean_reward == pytest.approx(logs.rewards.mean())
    assert report.as_dict()["estimates"]["ips"]["n"] == logs.n


def test_on_policy_logs_estimate_the_logged_average():
    """When the target equals the logging policy every weight is 1 and all estimators equal the plain mean."""
    probs = np.array([[0.5, 0.5], [0.2, 0.8], [0.9, 0.1]])
    logs = LoggedDecisions(np.array([0, 1, 0]), np.array([0.5, 0.8, 0.9]), np.array([1.0, 0.0, 0.5]), probs)
    assert ips(logs) == snips(logs) == pytest.approx(0.5)


def test_from_records_and_validation():
    logs = LoggedDecisions.from_records(
        ["a", "b"], ["a", "b"], [0.5, 0.25], [1.0, 0.0], [{"a": 1.0}, {"a": 0.5, "b": 0.5}])
    assert logs.actions.tolist() == [0, 1]
    assert ips(logs) == pytest.approx((2.0 * 1.0 + 2.0 * 0.0) / 2)
    with pytest.raises(ValueError, match="not among"):
        LoggedDecisions.from_records(["a"], ["z"], [1.0], [1.0], [{"a": 1.0}])
    with pytest.raises(ValueError, match="propensities"):
        LoggedDecisions(np.array([0]), np.array([0.0]), np.array([1.0]), np.array([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="probability vector"):
        LoggedDecisions(np.array([0]), np.array([0.5]), np.array([1.0]), np.array([[0.7, 0.7]]))
    with pytest.raises(ValueError, match="features"):
        fit_reward_model(logs, kind="ridge")
    with pytest.raises(ValueError, match="unknown estimators"):
        evaluate(logs, estimators=("magic",))
