"""Rollout rules: policy lifecycle states, sticky traffic split, canary rollback and the promotion gate.

Lifecycle of a policy version for one decision type::

    candidate -> shadow -> canary -> active -> retired
        ^          |         |         |
        +----------+---------+  (rollback)   retired -> active only to restore the previous active on rollback

- shadow: decides on the same requests as the served policy; its decisions are logged, never served;
- canary: served to ``percent`` % of units (sticky: a unit id always hashes to the same side);
- active: served to everyone else; at most one active and one canary per decision type.

Everything here is pure: states and statistics in, plans and verdicts out. The app applies a plan inside one
transaction and writes the audit entry; nothing here touches a store or a clock.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class PolicyState(StrEnum):
    CANDIDATE = "candidate"
    SHADOW = "shadow"
    CANARY = "canary"
    ACTIVE = "active"
    RETIRED = "retired"


TRANSITIONS: dict[PolicyState, frozenset[PolicyState]] = {
    PolicyState.CANDIDATE: frozenset({PolicyState.SHADOW, PolicyState.CANARY, PolicyState.RETIRED}),
    PolicyState.SHADOW: frozenset({PolicyState.CANARY, PolicyState.CANDIDATE, PolicyState.RETIRED}),
    PolicyState.CANARY: frozenset({PolicyState.ACTIVE, PolicyState.CANDIDATE, PolicyState.RETIRED}),
    PolicyState.ACTIVE: frozenset({PolicyState.RETIRED}),
    PolicyState.RETIRED: frozenset({PolicyState.ACTIVE}),  # only as the restore step of a rollback
}


class RolloutError(ValueError):
    """A requested state change is not allowed (the message says why and what to do instead)."""


@dataclass(frozen=True)
class Change:
    policy_id: str
    from_state: PolicyState
    to_state: PolicyState
    reason: str


def check_transition(current: PolicyState | str, target: PolicyState | str) -> None:
    current, target = PolicyState(current), PolicyState(target)
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "nothing"
        raise RolloutError(f"cannot move a policy from {current} to {target}; from {current} it can go to {allowed}")


def plan_transition(states: Mapping[str, PolicyState | str], policy_id: str, target: PolicyState | str) -> list[Change]:
    """The changes needed to move ``policy_id`` to ``target`` among the policies of one decision type.

    Promoting to active retires the current active policy. A second canary or shadow is refused (roll the first
    back): the serving path runs one of each, and a silent replacement would hide which one was evaluated.
    Use :func:`plan_rollback` for rollbacks; ``retired -> active`` is not a forward move.
    """
    states = {k: PolicyState(v) for k, v in states.items()}
    target = PolicyState(target)
    if policy_id not in states:
        raise RolloutError(f"unknown policy {policy_id!r}")
    current = states[policy_id]
    if current == PolicyState.RETIRED and target == PolicyState.ACTIVE:
        raise RolloutError("a retired policy returns to active only through a rollback of its successor")
    check_transition(current, target)
    changes = [Change(policy_id, current, target, f"{current} -> {target}")]
    if target in (PolicyState.CANARY, PolicyState.SHADOW):
        others = [p for p, s in states.items() if s == target and p != policy_id]
        if others:
            raise RolloutError(f"policy {others[0]} is already the {target}; promote or roll it back first")
    if target == PolicyState.ACTIVE:
        for other, state in states.items():
            if state == PolicyState.ACTIVE and other != policy_id:
                changes.append(Change(other, state, PolicyState.RETIRED, f"superseded by {policy_id}"))
    return changes


def plan_rollback(
    states: Mapping[str, PolicyState | str], policy_id: str, *, previous_active: str | None = None
) -> list[Change]:
    """Take ``policy_id`` out of traffic.

    A shadow or canary goes back to candidate. An active policy is retired and ``previous_active`` (the policy it
    superseded, which the app knows from the audit log) becomes active again; without one, the rollback is refused
    because it would leave the decision type with no policy to serve.
    """
    states = {k: PolicyState(v) for k, v in states.items()}
    if policy_id not in states:
        raise RolloutError(f"unknown policy {policy_id!r}")
    current = states[policy_id]
    if current in (PolicyState.SHADOW, PolicyState.CANARY):
        return [Change(policy_id, current, PolicyState.CANDIDATE, f"rollback of {current}")]
    if current != PolicyState.ACTIVE:
        raise RolloutError(f"policy {policy_id} is {current}; only shadow, canary or active policies can be rolled back")
    if previous_active is None:
        raise RolloutError(f"no previous active policy to restore; rolling back {policy_id} would leave none serving")
    if states.get(previous_active) != PolicyState.RETIRED:
        raise RolloutError(f"previous active policy {previous_active!r} is not retired; cannot restore it")
    return [
        Change(policy_id, current, PolicyState.RETIRED, "rolled back"),
        Change(previous_active, PolicyState.RETIRED, PolicyState.ACTIVE, f"restored by rollback of {policy_id}"),
    ]


# ---------------------------------------------------------------------------------------------- traffic split
@dataclass(frozen=True)
class Rollout:
    """Who serves a decision type right now."""

    active: str
    canary: str | None = None
    canary_percent: float = 0.0
    shadows: tuple[str, ...] = ()

    def __post_init__(self):
        if not 0.0 <= self.canary_percent <= 100.0:
            raise RolloutError(f"canary percent must be in [0, 100], got {self.canary_percent}")
        if self.canary is None and self.canary_percent > 0:
            raise RolloutError("canary_percent set without a canary policy")


@dataclass(frozen=True)
class Route:
    served: str  # the policy whose decision is returned
    arm: str  # "active" or "canary"
    shadows: tuple[str, ...] = ()  # policies that also decide, logged only


def bucket(unit_id: str, salt: str) -> float:
    """Deterministic position of a unit in [0, 100): the same unit and salt always land in the same place."""
    digest = hashlib.sha256(f"{salt}\x00{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * 100.0


def route(unit_id: str, rollout: Rollout, *, salt: str = "") -> Route:
    """Sticky split: units whose bucket is below ``canary_percent`` get the canary.

    The salt defaults to the canary's id, so each new canary draws a fresh sample of units, while raising the
    percentage of the same canary only adds units (nobody flips back to the active policy).
    """
    if not unit_id:
        raise RolloutError("a unit id is needed for a sticky split (e.g. the customer or session id)")
    shadows = tuple(s for s in rollout.shadows if s not in (rollout.active, rollout.canary))
    if rollout.canary and bucket(unit_id, salt or rollout.canary) < rollout.canary_percent:
        return Route(rollout.canary, "canary", shadows)
    return Route(rollout.active, "active", shadows)


# ----------------------------------------------------------------------------------------------- canary gate
@dataclass(frozen=True)
class ArmStats:
    decisions: int
    safety_blocks: int = 0
    outcomes: int = 0  # decisions with an observed reward
    reward_sum: float = 0.0
    reward_sq_sum: float = 0.0  # sum of squared rewards: the sequential test's variance (policies.canary)

    @property
    def block_rate(self) -> float:
        return self.safety_blocks / self.decisions if self.decisions else 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.outcomes if self.outcomes else math.nan


@dataclass(frozen=True)
class CanaryThresholds:
    min_decisions: int = 200  # canary decisions before the block-rate rule may fire
    min_outcomes: int = 100  # canary outcomes before the reward rule may fire
    max_block_rate_increase: float = 0.02  # absolute, e.g. 2 percentage points more blocks than active
    max_reward_drop: float = 0.05  # absolute drop in mean reward vs active
    # "fixed": the two rules above, checked as they stand; "sequential": policies.canary's always-valid test, where
    # the two deltas are the non-inferiority margins and min_* a burn-in before any verdict.
    method: str = "sequential"
    alpha: float = 0.05  # sequential only: chance of any false rollback over all checks, both metrics together

    def __post_init__(self):
        if self.method not in ("sequential", "fixed"):
            raise ValueError(f"canary method must be 'sequential' or 'fixed', got {self.method!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"canary alpha must be in (0, 1), got {self.alpha}")


@dataclass(frozen=True)
class CanaryVerdict:
    rollback: bool
    reasons: tuple[str, ...] = ()
    enough_data: bool = False
    details: dict[str, float] = field(default_factory=dict)
    decision: str = ""  # "rollback" | "promote" | "continue" (policies.canary.analyse_canary fills it)
    tests: tuple = ()  # policies.canary.MetricTest per metric (sequential method)


def canary_verdict(active: ArmStats, canary: ArmStats, thresholds: CanaryThresholds = CanaryThresholds()) -> CanaryVerdict:
    """The fixed-threshold rule (``method="fixed"``): roll back when a raw difference of means exceeds a delta.

    Only rules with enough canary data can fire. Checked after every outcome, noise alone eventually crosses the
    delta; ``policies.canary.analyse_canary`` is the default, sequential alternative."""
    reasons: list[str] = []
    details = {"canary_block_rate": canary.block_rate, "active_block_rate": active.block_rate,
               "canary_mean_reward": canary.mean_reward, "active_mean_reward": active.mean_reward}
    blocks_ready = canary.decisions >= thresholds.min_decisions and active.decisions > 0
    reward_ready = canary.outcomes >= thresholds.min_outcomes and active.outcomes > 0
    if blocks_ready and canary.block_rate - active.block_rate > thresholds.max_block_rate_increase:
        reasons.append(f"safety block rate {canary.block_rate:.3f} vs active {active.block_rate:.3f} "
                       f"(allowed +{thresholds.max_block_rate_increase:.3f})")
    if reward_ready and active.mean_reward - canary.mean_reward > thresholds.max_reward_drop:
        reasons.append(f"mean reward {canary.mean_reward:.3f} vs active {active.mean_reward:.3f} "
                       f"(allowed -{thresholds.max_reward_drop:.3f})")
    return CanaryVerdict(bool(reasons), tuple(reasons), blocks_ready and reward_ready, details)


# ------------------------------------------------------------------------------------------ promotion gate
@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: tuple[str, ...]


def ope_gate(
    candidate_ci_low: float,
    baseline_value: float,
    *,
    effective_sample_size: float,
    min_effective_sample_size: float = 100.0,
    max_regression: float = 0.0,
) -> GateResult:
    """Pass when the candidate's OPE lower confidence bound is not below the baseline by more than
    ``max_regression`` and the logs support the candidate (enough effective sample size)."""
    reasons = []
    if effective_sample_size < min_effective_sample_size:
        reasons.append(f"effective sample size {effective_sample_size:.0f} < {min_effective_sample_size:.0f}: "
                       "the logs barely cover this policy's choices")
    if candidate_ci_low < baseline_value - max_regression:
        reasons.append(f"lower bound {candidate_ci_low:.4f} below baseline {baseline_value:.4f} "
                       f"(allowed regression {max_regression:.4f})")
    return GateResult(not reasons, tuple(reasons))


def split_counts(unit_ids: Sequence[str], rollout: Rollout) -> dict[str, int]:
    """How many of ``unit_ids`` each policy serves (a quick check of a planned percentage)."""
    counts: dict[str, int] = {}
    for unit in unit_ids:
        served = route(unit, rollout).served
        counts[served] = counts.get(served, 0) + 1
    return counts
