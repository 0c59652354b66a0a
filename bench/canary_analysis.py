"""Canary analysis under continuous monitoring, on the ticket-routing simulator: false rollbacks and detection.

Rewards come from ``policies.simulator`` directly (no models): a policy routes a ticket to its true team with
probability ``q`` (else to another team), and the simulator's noisy reward for that (ticket, team) is the outcome.
Every decision gets an outcome; ``--canary-percent`` of them are the canary's; both arms are blocked by the safety
layer at the same ``--block-rate``. The canary check runs after EVERY outcome, as the service does.

- A/A (equal policies, ``--aa-outcomes`` outcomes per run): the share of runs that were ever rolled back, for the
  sequential test (``aa_false_rollback_rate``, must be <= alpha) and for today's fixed-threshold rule with the
  default ARBITER_CANARY_* settings (``aa_false_rollback_rate_fixed``).
- A true 5-point drop in mean reward (the canary routes correctly less often): the outcomes (all, and the canary's
  own) until 80% of runs were rolled back, and the median time to rollback, for both methods.

Prints ONE JSON line.

    python bench/canary_analysis.py            # 400 runs each, about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine

from policies.canary import rollback_mask
from policies.rollout import CanaryThresholds
from policies.simulator import TicketSimulator

# Today's defaults (app/settings.py): burn-in 200 decisions / 100 outcomes, margins 0.05 / 0.05.
DEFAULTS = dict(min_decisions=200, min_outcomes=100, max_block_rate_increase=0.05, max_reward_drop=0.05)


def reward_pools(n_tickets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ticket: the reward of routing it right, and of routing it to a random other team."""
    sim = TicketSimulator(seed=seed)
    rng = np.random.default_rng(seed)
    right, wrong = [], []
    for t in sim.tickets(n_tickets):
        others = [a for a in sim.teams if a != t.true_team]
        right.append(sim.outcome(t, t.true_team).reward)
        wrong.append(sim.outcome(t, others[int(rng.integers(len(others)))]).reward)
    return np.array(right), np.array(wrong)


def first_rollbacks(rng, pools, *, runs: int, steps: int, share: float, q_active: float, q_canary: float,
                    block_rate: float, thresholds: CanaryThresholds, chunk: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Index (0-based outcome count) of the first check that rolls back, per run (-1: never), and the canary's
    own outcome count at that point."""
    right, wrong = pools
    first, first_canary = np.full(runs, -1), np.full(runs, -1)
    for start in range(0, runs, chunk):
        r = min(chunk, runs - start)
        is_canary = rng.random((r, steps)) < share
        q = np.where(is_canary, q_canary, q_active)
        ticket = rng.integers(len(right), size=(r, steps))
        reward = np.where(rng.random((r, steps)) < q, right[ticket], wrong[ticket])
        blocked = rng.random((r, steps)) < block_rate

        def sums(mask):
            n = np.cumsum(mask, axis=1)
            return {"decisions": n, "outcomes": n, "safety_blocks": np.cumsum(blocked & mask, axis=1),
                    "reward_sum": np.cumsum(reward * mask, axis=1), "reward_sq_sum": np.cumsum(reward**2 * mask, axis=1)}

        canary = sums(is_canary)
        fired = rollback_mask(sums(~is_canary), canary, thresholds)
        any_fired = fired.any(axis=1)
        idx = np.where(any_fired, fired.argmax(axis=1), -1)
        first[start:start + r] = idx
        first_canary[start:start + r] = np.where(any_fired, canary["outcomes"][np.arange(r), np.maximum(idx, 0)], -1)
        print(f"  {start + r}/{runs} runs", file=sys.stderr, flush=True)
    return first, first_canary


def detection(first: np.ndarray, first_canary: np.ndarray, steps: int) -> dict:
    detected = first >= 0
    out = {"detected_share": float(detected.mean()), "outcomes_for_80pct_detection": None,
           "canary_outcomes_for_80pct_detection": None, "median_outcomes_to_rollback": None,
           "median_canary_outcomes_to_rollback": None}
    if detected.mean() >= 0.8:
        times = np.where(detected, first + 1, steps * 10)
        canary_times = np.where(detected, first_canary, steps * 10)
        out["outcomes_for_80pct_detection"] = int(np.quantile(times, 0.8, method="higher"))
        out["canary_outcomes_for_80pct_detection"] = int(np.quantile(canary_times, 0.8, method="higher"))
    if detected.mean() >= 0.5:
        out["median_outcomes_to_rollback"] = int(np.median(np.where(detected, first + 1, steps * 10)))
        out["median_canary_outcomes_to_rollback"] = int(np.median(np.where(detected, first_canary, steps * 10)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--aa-outcomes", type=int, default=10_000, help="Outcomes (both arms) per A/A run.")
    ap.add_argument("--drop-outcomes", type=int, default=20_000, help="Horizon of a run with a real drop.")
    ap.add_argument("--canary-percent", type=float, default=20.0)
    ap.add_argument("--accuracy", type=float, default=0.8, help="Share of tickets the active policy routes right.")
    ap.add_argument("--drop", type=float, default=0.05, help="True drop of the canary's mean reward.")
    ap.add_argument("--block-rate", type=float, default=0.03)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--tickets", type=int, default=3000, help="Simulated tickets in the reward pools.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    pools = reward_pools(args.tickets, args.seed)
    gap = float(pools[0].mean() - pools[1].mean())
    q_drop = args.accuracy - args.drop / gap  # mean reward is q * right + (1 - q) * wrong
    share = args.canary_percent / 100.0
    methods = {"sequential": CanaryThresholds(**DEFAULTS, method="sequential", alpha=args.alpha),
               "fixed": CanaryThresholds(**DEFAULTS, method="fixed")}
    result: dict = {"bench": "canary_analysis", "runs": args.runs, "aa_outcomes": args.aa_outcomes,
                    "drop_outcomes": args.drop_outcomes, "canary_percent": args.canary_percent, "alpha": args.alpha,
                    "active_mean_reward": float(args.accuracy * pools[0].mean() + (1 - args.accuracy) * pools[1].mean()),
                    "drop": args.drop, "canary_accuracy_with_drop": q_drop, "block_rate": args.block_rate,
                    "settings": DEFAULTS}
    for name, thresholds in methods.items():
        suffix = "" if name == "sequential" else "_fixed"
        print(f"{name}: A/A", file=sys.stderr)
        first, _ = first_rollbacks(np.random.default_rng(args.seed + 1), pools, runs=args.runs, steps=args.aa_outcomes,
                                   share=share, q_active=args.accuracy, q_canary=args.accuracy,
                                   block_rate=args.block_rate, thresholds=thresholds)
        result[f"aa_false_rollback_rate{suffix}"] = float((first >= 0).mean())
        print(f"{name}: {args.drop:.2f} drop", file=sys.stderr)
        first, first_canary = first_rollbacks(np.random.default_rng(args.seed + 2), pools, runs=args.runs,
                                              steps=args.drop_outcomes, share=share, q_active=args.accuracy,
                                              q_canary=q_drop, block_rate=args.block_rate, thresholds=thresholds)
        for key, value in detection(first, first_canary, args.drop_outcomes).items():
            result[f"{key}{suffix}"] = value
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["machine"] = machine()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
