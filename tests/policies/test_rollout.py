"""Rollout rules: lifecycle transitions, sticky split, canary rollback, OPE promotion gate."""

from __future__ import annotations

import pytest

from policies.rollout import (
    ArmStats,
    CanaryThresholds,
    PolicyState,
    Rollout,
    RolloutError,
    bucket,
    canary_verdict,
    check_transition,
    ope_gate,
    plan_rollback,
    plan_transition,
    route,
    split_counts,
)

S = PolicyState


@pytest.mark.parametrize(
    ("current", "target", "ok"),
    [
        (S.CANDIDATE, S.SHADOW, True),
        (S.SHADOW, S.CANARY, True),
        (S.CANARY, S.ACTIVE, True),
        (S.ACTIVE, S.RETIRED, True),
        (S.CANDIDATE, S.ACTIVE, False),  # no skipping the canary
        (S.SHADOW, S.ACTIVE, False),
        (S.ACTIVE, S.CANARY, False),
        (S.RETIRED, S.SHADOW, False),
    ],
)
def test_transition_table(current, target, ok):
    if ok:
        check_transition(current, target)
    else:
        with pytest.raises(RolloutError, match=f"from {current} to {target}"):
            check_transition(current, target)


def test_promotion_retires_the_current_active():
    changes = plan_transition({"old": "active", "new": "canary"}, "new", "active")
    assert [(c.policy_id, c.from_state, c.to_state) for c in changes] == [
        ("new", S.CANARY, S.ACTIVE), ("old", S.ACTIVE, S.RETIRED)]


def test_only_one_canary_and_one_shadow_at_a_time_and_retired_cannot_jump_back():
    with pytest.raises(RolloutError, match="already the canary"):
        plan_transition({"a": "canary", "b": "shadow"}, "b", "canary")
    with pytest.raises(RolloutError, match="already the shadow"):
        plan_transition({"a": "shadow", "b": "candidate"}, "b", "shadow")
    with pytest.raises(RolloutError, match="through a rollback"):
        plan_transition({"a": "retired"}, "a", "active")
    with pytest.raises(RolloutError, match="unknown policy"):
        plan_transition({}, "x", "shadow")


def test_rollbacks():
    assert plan_rollback({"c": "canary"}, "c")[0].to_state == S.CANDIDATE
    assert plan_rollback({"s": "shadow"}, "s")[0].to_state == S.CANDIDATE
    changes = plan_rollback({"new": "active", "old": "retired"}, "new", previous_active="old")
    assert [(c.policy_id, c.to_state) for c in changes] == [("new", S.RETIRED), ("old", S.ACTIVE)]
    with pytest.raises(RolloutError, match="leave none serving"):
        plan_rollback({"new": "active"}, "new")
    with pytest.raises(RolloutError, match="only shadow, canary or active"):
        plan_rollback({"x": "candidate"}, "x")


def test_sticky_split_keeps_a_unit_on_the_same_policy():
    rollout = Rollout(active="A", canary="C", canary_percent=20.0, shadows=("S",))
    units = [f"user-{i}" for i in range(4000)]
    first = [route(u, rollout) for u in units]
    assert first == [route(u, rollout) for u in units]
    share = sum(r.served == "C" for r in first) / len(units)
    assert 0.17 < share < 0.23
    assert all(r.shadows == ("S",) for r in first)
    assert {r.arm for r in first} == {"active", "canary"}
    # raising the percentage only moves units onto the canary, never back
    wider = Rollout(active="A", canary="C", canary_percent=50.0)
    assert all(route(u, wider).served == "C" for u, r in zip(units, first) if r.served == "C")
    assert split_counts(units[:100], Rollout(active="A")) == {"A": 100}


def test_split_inputs_are_validated():
    with pytest.raises(RolloutError):
        Rollout(active="A", canary_percent=5.0)
    with pytest.raises(RolloutError):
        Rollout(active="A", canary="C", canary_percent=120.0)
    with pytest.raises(RolloutError, match="unit id"):
        route("", Rollout(active="A"))
    assert 0.0 <= bucket("u", "salt") < 100.0


T = CanaryThresholds(min_decisions=100, min_outcomes=50, max_block_rate_increase=0.02, max_reward_drop=0.05)
ACTIVE = ArmStats(decisions=5000, safety_blocks=50, outcomes=4000, reward_sum=0.8 * 4000)


@pytest.mark.parametrize(
    ("canary", "rollback", "reason"),
    [
        (ArmStats(1000, 10, 500, 0.8 * 500), False, None),  # same as active
        (ArmStats(1000, 40, 500, 0.8 * 500), True, "safety block rate"),  # 4% vs 1% blocks
        (ArmStats(1000, 10, 500, 0.7 * 500), True, "mean reward"),  # 0.70 vs 0.80
        (ArmStats(50, 40, 500, 0.8 * 500), False, None),  # too few decisions for the block rule
        (ArmStats(1000, 10, 20, 0.1 * 20), False, None),  # too few outcomes for the reward rule
        (ArmStats(1000, 25, 500, 0.76 * 500), False, None),  # worse, but inside both thresholds
    ],
)
def test_canary_rollback_rule(canary, rollback, reason):
    verdict = canary_verdict(ACTIVE, canary, T)
    assert verdict.rollback is rollback
    if reason:
        assert any(reason in r for r in verdict.reasons)


def test_ope_gate():
    assert ope_gate(0.81, 0.80, effective_sample_size=500).passed
    low = ope_gate(0.70, 0.80, effective_sample_size=500, max_regression=0.05)
    assert not low.passed and "below baseline" in low.reasons[0]
    thin = ope_gate(0.95, 0.80, effective_sample_size=12)
    assert not thin.passed and "effective sample size" in thin.reasons[0]
