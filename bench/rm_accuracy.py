"""Reward-model accuracy on held-out human preferences (HH-RLHF harmless dev pairs).

Trains a recipe on part of ../shared/data/hh_harmless_dev.jsonl and evaluates on a fixed held-out
set that training never sees: the ``--test-size`` pairs with the smallest hash of their content
(so the split does not depend on file order). The rest is the training pool; the snapshot keeps
10% of it as validation for the calibration temperature, so the held-out ECE is honest.

Compared in the same run with the obvious alternative: "always prefer the longer response".

Prints ONE JSON line: accuracy, ECE (calibrated and not), NLL, length baseline and the ratio of
the two accuracies, training time, the recipe, and a ``machine`` object. A finished artifact in
``--output-dir`` with the same snapshot and hyperparameters is reused (its recorded train time is
reported; pass ``--fresh`` to retrain).

    python bench/rm_accuracy.py                                   # recipes/reward_minilm.yaml
    python bench/rm_accuracy.py --recipe recipes/reward_hh.yaml
    python bench/rm_accuracy.py --recipe recipes/reward_hh.yaml --ensemble-recipes recipes/reward_hh_smollm2.yaml
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import torch_machine as machine  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh_harmless_dev.jsonl"


def metrics_seconds(result) -> float:
    """Training wall time recorded in a reward model's manifest (also for a reused artifact)."""
    return float(result.manifest.metrics.get("train_wall_seconds", 0.0))


def split_held_out(pairs, test_size: int):
    """(training pool, held-out) by the hash of each pair's content: independent of file order."""
    ranked = sorted(pairs, key=lambda p: hashlib.sha256(("heldout:" + p.content_hash()).encode()).hexdigest())
    return ranked[test_size:], ranked[:test_size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default=str(REPO / "recipes" / "reward_minilm.yaml"))
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--test-size", type=int, default=300)
    parser.add_argument("--train-size", type=int, default=None, help="use only this many pool pairs (smoke runs)")
    parser.add_argument("--output-dir", default=None, help="default: var/bench/rm_accuracy/<recipe name>")
    parser.add_argument("--fresh", action="store_true", help="delete a previous artifact and retrain")
    parser.add_argument("--ensemble-seeds", nargs="*", type=int, default=[], metavar="SEED",
                        help="also train the recipe with these seeds and report the ensemble of all members "
                             "(reward_models.EnsembleScorer) next to each member")
    parser.add_argument("--ensemble-recipes", nargs="*", default=[], metavar="RECIPE",
                        help="also train these recipes on the same snapshot and report the ensemble of all members "
                             "(different models make different mistakes, which seeds of one recipe do not)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="recipe overrides (the main recipe only)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from reward_models import (
        EnsembleScorer,
        RewardScorer,
        SnapshotRules,
        build_snapshot,
        evaluate_ensemble,
        evaluate_pairs,
        labeled_pairs_from_preferences,
        read_pairs,
        train_reward_model,
    )
    from reward_models.recipes import load_recipe, parse_overrides

    data = Path(args.data)
    if not data.exists():
        print(json.dumps({"skipped": f"{data} is absent (the shared HH-RLHF dev data)", "machine": machine()}))
        return
    pairs = read_pairs(data)
    pool, held_out = split_held_out(pairs, args.test_size)
    if args.train_size:
        pool = pool[: args.train_size]
    snapshot = build_snapshot(labeled_pairs_from_preferences(pool), SnapshotRules(validation_fraction=0.1))

    recipe_path = Path(args.recipe)
    out = Path(args.output_dir or REPO / "var" / "bench" / "rm_accuracy" / recipe_path.stem)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    recipe = load_recipe(recipe_path, parse_overrides(args.set), output_dir=out)

    # The Trainer writes its log lines to stdout; this benchmark's stdout is its one JSON line.
    with contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        result = train_reward_model(
            snapshot, recipe.model, recipe.data, recipe.training, name=f"bench-{recipe_path.stem}", models_dir=REPO / "var" / "models"
        )
        wall = time.perf_counter() - start
        scorer = RewardScorer.load(result.artifact_dir)
        eval_start = time.perf_counter()
        report = evaluate_pairs(scorer, held_out)
        eval_seconds = time.perf_counter() - eval_start
        ensemble = None
        if args.ensemble_seeds or args.ensemble_recipes:
            # (label, recipe) of every extra member: the main recipe with other seeds, then other recipes.
            extra = [(f"{recipe_path.stem}-seed{seed}", load_recipe(recipe_path, {**parse_overrides(args.set), "seed": seed},
                                                                    output_dir=out.parent / f"{out.name}-seed{seed}"))
                     for seed in args.ensemble_seeds]
            extra += [(Path(p).stem, load_recipe(p, output_dir=out.parent / Path(p).stem)) for p in args.ensemble_recipes]
            members, member_seconds = [scorer], [metrics_seconds(result)]
            for label, member_recipe in extra:
                print(f"[bench] ensemble member {label}", file=sys.stderr)
                trained = train_reward_model(snapshot, member_recipe.model, member_recipe.data, member_recipe.training,
                                             name=f"bench-{label}", models_dir=REPO / "var" / "models")
                members.append(RewardScorer.load(trained.artifact_dir))
                member_seconds.append(metrics_seconds(trained))
            joint = evaluate_ensemble(EnsembleScorer(members), held_out)
            ensemble = {
                "members": [recipe_path.stem] + [label for label, _ in extra],
                "accuracy": round(joint.ensemble.accuracy, 4),
                "ece_calibrated": round(joint.ensemble.ece, 4),
                "member_accuracies": [round(m.accuracy, 4) for m in joint.members],
                "mean_member_disagreement": round(joint.mean_disagreement, 4),
                "train_seconds": round(sum(member_seconds), 1),
            }

    metrics = result.manifest.metrics
    print(
        json.dumps(
            {
                "benchmark": "rm_accuracy",
                "recipe": recipe_path.name,
                "base_model": result.manifest.base_model,
                "n_train": len(snapshot.train),
                "n_validation": len(snapshot.validation),
                "n_test": report.n,
                "accuracy": round(report.accuracy, 4),
                "ece_calibrated": round(report.ece, 4),
                "ece_uncalibrated": round(report.ece_uncalibrated, 4),
                "nll": round(report.nll, 4),
                "temperature": round(report.temperature, 4),
                "length_correlation": round(report.length_correlation, 4),
                "longer_response_accuracy": round(report.longer_response_accuracy, 4),
                "accuracy_ratio_vs_longer": round(report.accuracy / report.longer_response_accuracy, 3),
                "validation_accuracy": metrics.get("validation_accuracy"),
                "train_seconds": round(metrics.get("train_wall_seconds", wall), 1),
                "train_reused": result.reused,
                "eval_seconds": round(eval_seconds, 1),
                **({"ensemble": ensemble} if ensemble else {}),
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
