"""Drift statistics: known answers and the alert rule (significant AND large enough)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from policies.drift import (
    Record,
    action_entropy,
    categorical_drift,
    compare_windows,
    flatten_context,
    infer_kind,
    numeric_drift,
    propensity_fit,
    rate_increase,
    shannon_entropy,
)


def test_flatten_and_kinds():
    assert flatten_context({"a": 1, "customer": {"tier": "vip", "tags": ["x"]}}) == {"a": 1, "customer.tier": "vip"}
    assert infer_kind([1, 2.5, None]) == "numeric"
    assert infer_kind(["en", "de"] * 50) == "categorical"
    assert infer_kind([f"ticket number {i}" for i in range(100)]) == "text"
    assert infer_kind([True, False]) == "categorical"


def test_entropy_known_answers():
    assert shannon_entropy([5, 5]) == pytest.approx(1.0)  # a fair coin: one bit
    assert shannon_entropy([1, 1, 1, 1]) == pytest.approx(2.0)
    assert shannon_entropy([7]) == 0.0
    collapsed = action_entropy(list("abcd") * 25, ["a"] * 97 + list("bcd"), min_ratio=0.5)
    assert collapsed.status == "alert" and collapsed.details["reference_bits"] == pytest.approx(2.0)


def test_categorical_drift_needs_significance_and_size():
    """Shares 50/50 vs 0/100: JS distance (base 2) = sqrt(JS divergence); the divergence of (1/2, 1/2) and (0, 1) is
    1/2 * KL((1/2,1/2) || (1/4,3/4)) + 1/2 * KL((0,1) || (1/4,3/4)) = 1 - 3/4 log2 3 + ... = 0.3113 bits."""
    ref = ["a", "b"] * 100
    shifted = categorical_drift("m", "k", ref, ["b"] * 200, alpha=0.001, min_effect=0.1)
    m = np.array([0.25, 0.75])
    kl = lambda p: sum(pi * math.log2(pi / mi) for pi, mi in zip(p, m) if pi > 0)  # noqa: E731
    assert shifted.value == pytest.approx(math.sqrt(0.5 * kl([0.5, 0.5]) + 0.5 * kl([0.0, 1.0])))
    assert shifted.status == "alert" and shifted.details["p_value"] < 1e-10
    small = categorical_drift("m", "k", ["a", "b"] * 10000, ["a"] * 10400 + ["b"] * 9600, alpha=0.001, min_effect=0.1)
    assert small.details["p_value"] < 0.001 and small.status == "ok"  # significant, but a 2-point shift
    assert categorical_drift("m", "k", ref, ["a"] * 10, alpha=0.001, min_effect=0.1).status == "insufficient_data"


def test_numeric_drift_rates_and_propensities():
    rng = np.random.default_rng(0)
    assert numeric_drift("m", "", rng.normal(0, 1, 500), rng.normal(1, 1, 500), alpha=0.001, min_effect=0.1).status == "alert"
    assert numeric_drift("m", "", rng.normal(0, 1, 500), rng.normal(0, 1, 500), alpha=0.001, min_effect=0.1).status == "ok"
    rise = rate_increase("safety_rate", "block", 10, 1000, 80, 400, alpha=0.001, min_increase=0.1)
    assert rise.value == pytest.approx(0.19) and rise.status == "alert"
    fall = rate_increase("safety_rate", "block", 200, 1000, 10, 400, alpha=0.001, min_increase=0.1)
    assert fall.status == "ok"  # fewer blocks is not an alarm
    probs = [{"a": 0.8, "b": 0.2}] * 200
    assert propensity_fit(["a"] * 160 + ["b"] * 40, probs, alpha=0.001, min_effect=0.1).status == "ok"
    assert propensity_fit(["b"] * 150 + ["a"] * 50, probs, alpha=0.001, min_effect=0.1).status == "alert"


def test_compare_windows_reads_every_field_and_monitor():
    """A numeric field that shifts by one standard deviation alerts; the rest of an identical stream does not."""
    rng = np.random.default_rng(1)

    def records(n, shift):
        return [Record({"amount": float(rng.normal(shift, 1)), "channel": str(rng.choice(["email", "chat"])),
                        "body": "x" * int(rng.integers(50, 60))}, str(rng.choice(["a", "b"])), {"a": 0.5, "b": 0.5},
                       float(rng.random()), "allow") for _ in range(n)]

    readings = {(r.monitor, r.key): r for r in compare_windows(records(300, 0), records(300, 1), alpha=0.001,
                                                                min_effect=0.1)}
    assert set(readings) == {("input_drift", "amount"), ("input_drift", "body"), ("input_drift", "channel"),
                             ("action_distribution", ""), ("action_entropy", ""), ("action_vs_propensity", ""),
                             ("reward_drift", ""), *(("safety_rate", e) for e in ("block", "redact", "mask", "escalate"))}
    assert readings[("input_drift", "body")].details["kind"] == "text length"
    assert [k for k, r in readings.items() if r.status == "alert"] == [("input_drift", "amount")]
