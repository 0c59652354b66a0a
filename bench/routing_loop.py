"""One turn of the learning loop on ticket routing: exploring base policy -> labels -> reward model -> DPO.

1. The base SmolLM2-135M-Instruct routes ``--eval`` held-out simulated tickets greedily: base accuracy.
2. The same model, exploring (``--explore-temperature``, floor ``--explore-epsilon``), routes ``--train`` tickets
   with exact propensities; the simulator answers with noisy rewards. These outcomes are the labels.
3. Reward model: per-team ridge regression of the reward on hashed ticket words (``policies.ope``'s model; the
   reward_models package trains text-pair models, not (context, action) regressions, so this step uses the simple
   one). Its best team per training ticket becomes the chosen answer.
4. DPO with ``--recipe`` (recipes/dpo_routing.yaml: TRL DPOTrainer + LoRA on the top blocks) on pairs (reward
   model's best team vs. a wrong team drawn from the base policy's own preferences); the exploring pass's
   log-likelihoods serve as the reference, so DPO runs no reference forward pass.
5. The DPO policy routes the held-out tickets greedily: accuracy after one loop.

Compared in the same run with the obvious alternative: routing directly with the reward model's argmax.
Every stage caches its result under ``--out`` (keyed by its arguments), so an interrupted run resumes and a
finished one re-prints its figures. The DPO stage reports wall time, process CPU time and the load average,
because the 2 cores of this machine are shared. Prints ONE JSON line.

    OMP_WAIT_POLICY=PASSIVE python bench/routing_loop.py
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine
from ope_accuracy import featurize

from policies.action_policy import ActionPolicy
from policies.backends.local import TransformersBackend
from policies.decision_types import BUILTIN_DIR, load_decision_type
from policies.evaluation import greedy_accuracy, score_all
from policies.ope import LoggedDecisions, fit_reward_model
from policies.preference_data import pairs_from_action_values
from policies.recipes import load_recipe
from policies.simulator import TicketSimulator

HELD_OUT_START = 1_000_000  # held-out tickets come from a disjoint index range of the same simulator


class Stages:
    """Cache of stage results: ``out/<name>-<hash of its arguments>.json|.npy``."""

    def __init__(self, out: Path):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)

    def path(self, name: str, key: dict, suffix: str) -> Path:
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        return self.out / f"{name}-{digest}{suffix}"

    def array(self, name: str, key: dict, compute):
        path = self.path(name, key, ".npy")
        if path.exists():
            return np.load(path)
        value = compute()
        np.save(path, value)
        return value

    def record(self, name: str, key: dict, compute):
        path = self.path(name, key, ".json")
        if path.exists():
            return json.loads(path.read_text())
        value = compute()
        path.write_text(json.dumps(value))
        return value


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="base checkpoint (default: packaged SmolLM2)")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "routing_loop")
    parser.add_argument("--train", type=int, default=600, help="tickets routed by the exploring base policy")
    parser.add_argument("--eval", type=int, default=200, help="held-out tickets")
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "dpo_routing.yaml")
    parser.add_argument("--pairs", type=int, default=None, help="DPO pairs (default: the recipe's data.max_pairs)")
    parser.add_argument("--explore-temperature", type=float, default=4.0)
    parser.add_argument("--explore-epsilon", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    data = recipe.data
    args.pairs = args.pairs or int(data.get("max_pairs", 480))

    if args.model_dir is None:
        from reward_models.local_models import smollm2_dir

        args.model_dir = smollm2_dir(REPO / "var" / "models")
    stages = Stages(args.out)
    sim = TicketSimulator(seed=args.seed)
    train, held_out = sim.tickets(args.train), sim.tickets(args.eval, start=HELD_OUT_START)
    routing = load_decision_type(BUILTIN_DIR / "ticket-routing.yaml")
    teams = routing.action_ids
    base = TransformersBackend.load(args.model_dir, batch_size=16)
    explorer = ActionPolicy(routing, base, temperature=args.explore_temperature, epsilon=args.explore_epsilon,
                            seed=args.seed, policy_id="base")
    common = {"model": str(args.model_dir), "seed": args.seed}
    truth_eval = [t.true_team for t in held_out]

    # 1. base accuracy on held-out tickets
    base_eval = stages.array("base_eval", {**common, "eval": args.eval},
                             lambda: score_all(explorer, [t.context for t in held_out], desc="base, held-out"))
    base_accuracy = greedy_accuracy(base_eval, teams, truth_eval)

    # 2. exploring base policy on training tickets: decisions with exact propensities, simulated outcomes
    base_train = stages.array("base_train", {**common, "train": args.train},
                              lambda: score_all(explorer, [t.context for t in train], desc="base, exploring"))

    def explore():
        rows = []
        for ticket, row in zip(train, base_train):
            d = explorer.decide_from_scores(dict(zip(teams, row)), key=ticket.ticket_id)
            rows.append({"action": d.action, "propensity": d.propensity, "reward": sim.outcome(ticket, d.action).reward})
        return rows

    explore_key = {**common, "train": args.train, "t": args.explore_temperature, "eps": args.explore_epsilon}
    logged = stages.record("explore", explore_key, explore)

    # 3. reward model over (ticket, team), fitted on the logged outcomes
    logs = LoggedDecisions(np.array([teams.index(r["action"]) for r in logged]),
                           np.array([r["propensity"] for r in logged]), np.array([r["reward"] for r in logged]),
                           np.full((len(train), len(teams)), 1.0 / len(teams)), features=featurize(train))
    values_train = fit_reward_model(logs, kind="ridge", folds=1)
    rm_train_accuracy = greedy_accuracy(values_train, teams, [t.true_team for t in train])
    rm_eval_accuracy = greedy_accuracy(_predict_ridge(logs, featurize(held_out)), teams, truth_eval)

    # 4. DPO on reward-model pairs, the exploring pass's log-likelihoods as reference
    examples = pairs_from_action_values(
        [t.context for t in train], values_train, explorer.prompt, teams, margin=float(data.get("margin", 0.2)),
        negatives=int(data.get("negatives", 1)), reference_logprobs=base_train,
        negative_temperature=data.get("negative_temperature"), seed=args.seed)[: args.pairs]
    truth_by_prompt = {explorer.prompt(t.context): t.true_team for t in train}
    pair_accuracy = float(np.mean([e.chosen == truth_by_prompt[e.prompt] for e in examples]))
    dpo_key = {**explore_key, "pairs": len(examples), "recipe": Path(args.recipe).read_text()}
    dpo_dir = stages.path("dpo", dpo_key, "")
    dpo = stages.record("dpo_run", dpo_key, lambda: run_dpo(args, recipe, examples, dpo_dir, logged))

    # 5. DPO policy on the held-out tickets
    def dpo_scores():
        trained = ActionPolicy(routing, TransformersBackend.load(dpo_dir, batch_size=16), temperature=1.0, epsilon=0.0)
        return score_all(trained, [t.context for t in held_out], desc="dpo, held-out")

    dpo_eval = stages.array("dpo_eval", dpo_key, dpo_scores)
    dpo_accuracy = greedy_accuracy(dpo_eval, teams, truth_eval)

    print(json.dumps({
        "benchmark": "routing_loop",
        "base_accuracy": base_accuracy,
        "dpo_accuracy": dpo_accuracy,
        "ratio_dpo_over_base": dpo_accuracy / max(base_accuracy, 1e-9),
        "reward_model_router_accuracy": rm_eval_accuracy,
        "ratio_dpo_over_reward_model_router": dpo_accuracy / max(rm_eval_accuracy, 1e-9),
        "target_accuracy_met": dpo_accuracy >= 0.9,
        "dpo_wall_seconds": dpo["wall_seconds"],
        "dpo_cpu_seconds": dpo["cpu_seconds"],
        "dpo_load_average": dpo["load_average"],
        "target_10min_wall_met": dpo["wall_seconds"] <= 600,
        "held_out_tickets": args.eval,
        "train_tickets": args.train,
        "dpo_pairs": len(examples),
        "pair_label_accuracy": pair_accuracy,
        "reward_model": "per-team ridge on hashed words (policies.ope.fit_reward_model)",
        "reward_model_train_accuracy": rm_train_accuracy,
        "explore_mean_reward": float(np.mean([r["reward"] for r in logged])),
        "explore_action_share": {a: float(np.mean([r["action"] == a for r in logged])) for a in teams},
        "dpo_final_loss": dpo["train_loss"],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "recipe": {"training": recipe.training, "lora": vars(recipe.lora) if recipe.lora else None, "data": data},
        "machine": machine(),
    }))


def _predict_ridge(logs: LoggedDecisions, features) -> np.ndarray:
    """The reward model fitted on all logs, applied to new tickets (same model as fit_reward_model, folds=1)."""
    from sklearn.linear_model import Ridge

    out = np.zeros((features.shape[0], logs.n_actions))
    for a in range(logs.n_actions):
        rows = logs.actions == a
        out[:, a] = Ridge(alpha=1.0).fit(logs.features[rows], logs.rewards[rows]).predict(features)
    return out


def run_dpo(args, recipe, examples, output_dir: Path, logged) -> dict:
    from policies.dpo import train_dpo
    from policies.training import Lineage, data_hash

    lineage = Lineage(base_model=str(args.model_dir), decision_type="ticket-routing",
                      reward_model_id="ridge-per-team", snapshot_hash=data_hash(logged))
    wall, cpu, load = time.time(), cpu_seconds(), os.getloadavg()[0]
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout is the one JSON line
        result = train_dpo(examples, base_model=args.model_dir, output_dir=output_dir, lineage=lineage,
                           config=recipe.trainer_config(), lora=recipe.lora)
    return {"wall_seconds": round(time.time() - wall, 1), "cpu_seconds": round(cpu_seconds() - cpu, 1),
            "load_average": [round(load, 2), round(os.getloadavg()[0], 2)],
            "train_loss": result.metrics.get("train_loss"), "resumed_from": result.resumed_from}


if __name__ == "__main__":
    main()
