"""How many decisions the monitors need to see a shift of the ticket mix, and how often they alarm without one.

A routing policy (right team with probability 0.85, the rest spread evenly, probabilities logged) serves
simulated tickets; the monitors (``policies.drift.compare_windows``, the code behind ``arbiter monitor report``)
compare a window of decisions with a reference of ``--reference`` decisions. With drift the window's tickets are
EU billing, shipping and account tickets only (the shift the tests inject); without drift they come from the same
mix as the reference. For each window size: the share of ``--replicates`` windows in which the region input
monitor, the action-distribution monitor, and any monitor at all alert. Default thresholds (ARBITER_MONITOR_ALPHA
0.001, ARBITER_MONITOR_MIN_EFFECT 0.1). Prints ONE JSON line.

    python bench/drift_detection.py          # about half a minute on 2 cores
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

from policies.drift import Record, compare_windows
from policies.simulator import Ticket, TicketSimulator


def record(sim: TicketSimulator, ticket: Ticket, rng: np.random.Generator) -> Record:
    probs = {a: (0.85 if a == ticket.true_team else 0.15 / (len(sim.teams) - 1)) for a in sim.teams}
    action = str(rng.choice(list(probs), p=list(probs.values())))
    verdict = "escalate" if ticket.context["mentions_legal_action"] else "allow"
    return Record(ticket.context, action, probs, sim.outcome(ticket, action).reward, verdict)


def shifted(ticket: Ticket) -> bool:
    return ticket.context["customer"]["region"] == "EU" and ticket.topic in ("billing", "shipping", "account")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", type=int, default=500)
    ap.add_argument("--windows", default="30,50,100,200,300,500")
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--alpha", type=float, default=0.001)
    ap.add_argument("--min-effect", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    sim, rng = TicketSimulator(seed=args.seed), np.random.default_rng(args.seed)
    sizes = [int(x) for x in args.windows.split(",")]
    reference = [record(sim, t, rng) for t in sim.tickets(args.reference)]
    need = max(sizes) * 4
    same = [record(sim, t, rng) for t in sim.tickets(need, start=100_000)]
    drifted, i = [], 200_000
    while len(drifted) < need:
        t = sim.ticket(i)
        i += 1
        if shifted(t):
            drifted.append(record(sim, t, rng))
    print(f"pools ready ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    rows: list[dict] = []
    false_by_monitor: dict[str, int] = {}  # which monitors alarmed without drift, and how often
    for size in sizes:
        row: dict = {"window": size}
        for name, pool in (("drift", drifted), ("no_drift", same)):
            region = action = any_alert = 0
            false_alarms = false_by_monitor if name == "no_drift" else {}
            for _ in range(args.replicates):
                window = [pool[j] for j in rng.choice(len(pool), size=size, replace=False)]
                readings = compare_windows(reference, window, alpha=args.alpha, min_effect=args.min_effect)
                alerts = {(r.monitor, r.key) for r in readings if r.status == "alert"}
                region += ("input_drift", "customer.region") in alerts
                action += ("action_distribution", "") in alerts
                any_alert += bool(alerts)
                for monitor, key in alerts if name == "no_drift" else ():
                    false_alarms[f"{monitor}[{key}]" if key else monitor] = false_alarms.get(
                        f"{monitor}[{key}]" if key else monitor, 0) + 1
            row[name] = {"region_alert": region / args.replicates, "action_alert": action / args.replicates,
                         "any_alert": any_alert / args.replicates}
        rows.append(row)
        print(f"  window {size}: {row}", file=sys.stderr, flush=True)

    def first(key: str, monitor: str) -> int | None:
        return next((r["window"] for r in rows if r["drift"][monitor] >= 0.8), None) if key == "drift" else None

    result = {"bench": "drift_detection", "reference": args.reference, "replicates": args.replicates,
              "alpha": args.alpha, "min_effect": args.min_effect,
              "window_for_80pct_region_alert": first("drift", "region_alert"),
              "window_for_80pct_action_alert": first("drift", "action_alert"),
              "no_drift_any_alert_rate": float(np.mean([r["no_drift"]["any_alert"] for r in rows])),
              "no_drift_windows": len(rows) * args.replicates, "no_drift_alerts_by_monitor": false_by_monitor,
              "by_window": rows, "seconds": round(time.perf_counter() - t0, 1), "machine": machine()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
