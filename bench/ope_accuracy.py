"""Off-policy evaluation accuracy on the ticket-routing simulator, where the true value is known exactly.

An exploring logging policy routes ``--n`` simulated tickets (exact propensities from ``policies.propensity``:
temperature softmax + exploration floor), the simulator answers with noisy rewards, and IPS, SNIPS and DR
estimate the value of a *different* target policy from those logs alone. The target's true value is its exact
expected reward (``TicketSimulator.expected_reward``) averaged over ``--population`` fresh tickets.

The two policies are cheap text classifiers (hashed bag of words + logistic regression; the logging one trained
on few labels, the target on many) rather than the language model, so that ``--replicates`` independent logs
can be drawn to measure interval coverage and error spread; the estimators only see logs, whatever the policy.

Compared in the same run with the obvious alternative: the logged average reward (what you get by ignoring
that the logs came from another policy). Prints ONE JSON line.

    python bench/ope_accuracy.py                    # 5,000 decisions, 100 replicates
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

from policies.ope import LoggedDecisions, evaluate
from policies.propensity import action_probabilities, rng_for, sample_action
from policies.simulator import TEAMS, Ticket, TicketSimulator


def featurize(tickets: list[Ticket]):
    """Hashed words of subject + body, plus the customer attributes: the context features DR regresses on."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import HashingVectorizer

    words = HashingVectorizer(n_features=2**14, alternate_sign=False, norm="l2", ngram_range=(1, 2))
    text = words.transform([t.text for t in tickets])
    attrs = np.array([[t.context["customer"]["tier"] == "vip", t.context["mentions_legal_action"]] for t in tickets],
                     dtype=np.float64)
    return hstack([text, csr_matrix(attrs)]).tocsr()


class ClassifierPolicy:
    """Logistic regression over ticket features, turned into exact action probabilities like ActionPolicy does."""

    def __init__(self, tickets: list[Ticket], *, temperature: float, epsilon: float, c: float):
        from sklearn.linear_model import LogisticRegression

        labels = [TEAMS.index(t.true_team) for t in tickets]
        self.model = LogisticRegression(C=c, max_iter=2000).fit(featurize(tickets), labels)
        self.temperature, self.epsilon = temperature, epsilon

    def probabilities(self, features) -> np.ndarray:
        logp = np.full((features.shape[0], len(TEAMS)), -30.0)
        logp[:, self.model.classes_] = self.model.predict_log_proba(features)
        rows = [action_probabilities(dict(zip(TEAMS, row)), temperature=self.temperature, epsilon=self.epsilon)
                for row in logp]
        return np.array([[r[a] for a in TEAMS] for r in rows])


def log_decisions(sim, tickets, logging_policy, target_policy, seed):
    features = featurize(tickets)
    p_log = logging_policy.probabilities(features)
    actions, propensities, rewards = [], [], []
    for ticket, probs in zip(tickets, p_log):
        action, propensity = sample_action(dict(zip(TEAMS, probs)), rng_for(seed, ticket.ticket_id))
        actions.append(TEAMS.index(action))
        propensities.append(propensity)
        rewards.append(sim.outcome(ticket, action).reward)
    return LoggedDecisions(np.array(actions), np.array(propensities), np.array(rewards),
                           target_policy.probabilities(features), features=features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="logged decisions per replicate")
    parser.add_argument("--replicates", type=int, default=100, help="independent logs (coverage, error spread)")
    parser.add_argument("--population", type=int, default=20000, help="fresh tickets for the true value")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.time()

    sim = TicketSimulator(seed=args.seed)
    # Logging: a weak classifier (60 labels), flattened and with a 20% exploration floor.
    logging_policy = ClassifierPolicy(sim.tickets(60, start=9_000_000), temperature=2.0, epsilon=0.2, c=1.0)
    # Target: a stronger, sharper classifier (1,000 labels), little exploration: a genuinely different policy.
    target_policy = ClassifierPolicy(sim.tickets(1000, start=8_000_000), temperature=0.5, epsilon=0.02, c=10.0)

    population = sim.tickets(args.population, start=7_000_000)
    q_true = sim.expected_rewards(population)
    pop_features = featurize(population)
    true_value = float(np.mean(np.sum(target_policy.probabilities(pop_features) * q_true, axis=1)))
    logging_value = float(np.mean(np.sum(logging_policy.probabilities(pop_features) * q_true, axis=1)))

    names = ("ips", "snips", "dr")
    values = {k: [] for k in (*names, "logged_mean")}
    covered = {k: 0 for k in names}
    first = None
    for r in range(args.replicates):
        tickets = sim.tickets(args.n, start=r * args.n)
        report = evaluate(log_decisions(sim, tickets, logging_policy, target_policy, seed=r),
                          n_bootstrap=args.bootstrap, seed=r)
        first = first or report
        values["logged_mean"].append(report.logged_mean_reward)
        for k in names:
            est = report.estimates[k]
            values[k].append(est.value)
            covered[k] += est.ci_low <= true_value <= est.ci_high
        print(f"replicate {r + 1}/{args.replicates}", file=sys.stderr, end="\r")

    def rel_err(v):
        return abs(v - true_value) / true_value

    summary = {}
    for k, vals in values.items():
        vals = np.asarray(vals)
        summary[k] = {
            "first_replicate_value": float(vals[0]),
            "first_replicate_rel_error": rel_err(float(vals[0])),
            "mean_abs_rel_error": float(np.mean(np.abs(vals - true_value)) / true_value),
            "rmse": float(np.sqrt(np.mean((vals - true_value) ** 2))),
            "share_within_5pct": float(np.mean(np.abs(vals - true_value) / true_value <= 0.05)),
        }
        if k in covered:
            est = first.estimates[k]
            summary[k].update(first_replicate_ci=[est.ci_low, est.ci_high], ci_coverage=covered[k] / args.replicates)

    result = {
        "benchmark": "ope_accuracy",
        "n_decisions": args.n,
        "replicates": args.replicates,
        "true_value": true_value,
        "logging_policy_value": logging_value,
        "effective_sample_size_first": first.effective_sample_size,
        "max_weight_first": first.max_weight,
        "estimators": summary,
        "targets_met": {k: summary[k]["first_replicate_rel_error"] <= 0.05 for k in ("dr", "snips")},
        "ratio_rmse_naive_over_dr": summary["logged_mean"]["rmse"] / summary["dr"]["rmse"],
        "ratio_rmse_ips_over_dr": summary["ips"]["rmse"] / summary["dr"]["rmse"],
        "wall_seconds": round(time.time() - started, 1),
        "machine": machine(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
