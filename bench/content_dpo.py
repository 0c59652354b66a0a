"""Content policy: DPO on human preference pairs, judged by a reward model on held-out prompts.

SmolLM2-135M-Instruct is trained with ``--recipe`` (recipes/dpo_content.yaml, LoRA) on ``--pairs`` HH-RLHF
harmless pairs from ../shared/data (the shortest ones, to fit a CPU budget). On ``--eval-prompts`` held-out prompts
(a hash split: training never sees them) the base model and the DPO policy each answer greedily; a trained reward
model (``--reward-model``, e.g. the artifact of bench/rm_accuracy.py) scores both answers, and the local judge
(labeling.judges.smollm: SmolLM2-135M-Instruct comparing the letters A/B, bias-calibrated) compares them in both
orders, an order-inconsistent verdict counting as a tie. Reported: the DPO policy's win rate against the base
(ties count half) by each judge, both mean rewards, each judge's agreement with the human labels of the held-out
pairs (how far to trust it), and the Monte-Carlo KL divergence of the DPO policy from the base (its reference).

The obvious alternative is the base model itself: a win rate of 0.5 means no change. Prints ONE JSON line.

    python bench/content_dpo.py --reward-model var/bench/rm_accuracy/reward_minilm
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import machine  # noqa: E402

from policies.backends.local import TransformersBackend  # noqa: E402
from policies.evaluation import kl_to_reference, win_rate  # noqa: E402
from policies.preference_data import examples_from_preference_pairs  # noqa: E402
from policies.recipes import load_recipe  # noqa: E402
from policies.training import Lineage  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh_harmless_dev.jsonl"


def _key(pair) -> str:
    return hashlib.sha256(pair.content_hash().encode()).hexdigest()


def local_judge_preferences(judge, prompts: list[str], first: list[str], second: list[str]) -> list[str]:
    """The local judge's label ("a" = first, "b" = second, "tie") for each pair, judged in both orders."""
    from tqdm.auto import tqdm

    from labeling.verdicts import Comparison

    comparisons = [Comparison(str(i), p, a, b) for i, (p, a, b) in enumerate(zip(prompts, first, second))]
    with tqdm(total=2 * len(comparisons), desc="local judge forward passes", unit="req") as bar:
        scores = judge.score_both_orders(comparisons, on_batch=bar.update)
    return [judge.label_from_scores(c.id, pair).choice for c, pair in zip(comparisons, scores)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--reward-model", type=Path, default=REPO / "var" / "bench" / "rm_accuracy" / "reward_minilm")
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "dpo_content.yaml")
    parser.add_argument("--pairs", type=int, default=64)
    parser.add_argument("--eval-prompts", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--max-length", type=int, default=256, help="prompt + answer tokens per training sequence")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="training overrides of the recipe, e.g. learning_rate=1e-3 num_train_epochs=2")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "bench" / "content_dpo")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data} is absent: the shared HH-RLHF dev data is needed for this benchmark")
    if not args.reward_model.exists():
        sys.exit(f"reward model {args.reward_model} not found: run bench/rm_accuracy.py first or pass --reward-model")

    from policies.dpo import train_dpo
    from reward_models import load_scorer, read_pairs
    from reward_models.local_models import smollm2_dir
    from reward_models.recipes import parse_overrides

    base_dir = smollm2_dir(REPO / "var" / "models")
    base = TransformersBackend.load(base_dir, batch_size=8)
    pairs = sorted(read_pairs(args.data), key=_key)
    held_out, pool = pairs[: args.eval_prompts], pairs[args.eval_prompts :]

    def length(p) -> int:
        return len(base.tokenizer(text=base.render(p.prompt_messages()) + max(p.chosen, p.rejected, key=len))["input_ids"])

    train_pairs = [p for p in pool if length(p) <= args.max_length][: args.pairs]
    examples = examples_from_preference_pairs(train_pairs, base.render)

    recipe = load_recipe(args.recipe)
    overrides = parse_overrides(args.set)
    config = recipe.trainer_config(**{"max_length": args.max_length, **overrides})
    key = args.recipe.read_bytes() + json.dumps(overrides, sort_keys=True).encode()
    run_dir = args.out / f"dpo-{len(examples)}-{hashlib.sha256(key).hexdigest()[:8]}"
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, wall0, load0 = usage.ru_utime + usage.ru_stime, time.time(), os.getloadavg()[0]
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs; stdout is the one JSON line
        result = train_dpo(examples, base_model=base_dir, output_dir=run_dir, config=config, lora=recipe.lora,
                           lineage=Lineage(str(base_dir), "content", reward_model_id=str(args.reward_model)))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    dpo_cpu, dpo_wall = usage.ru_utime + usage.ru_stime - cpu0, time.time() - wall0

    policy = TransformersBackend.load(run_dir, batch_size=8)
    prompts = [base.render(p.prompt_messages()) for p in held_out]
    base_answers = base.generate(prompts, max_new_tokens=args.max_new_tokens, temperature=0.0)
    dpo_answers = policy.generate(prompts, max_new_tokens=args.max_new_tokens, temperature=0.0)
    scorer = load_scorer(args.reward_model)
    judged = win_rate([p.prompt_text() for p in held_out], dpo_answers, base_answers, scorer.score)
    rm_human = win_rate([p.prompt_text() for p in held_out], [p.chosen for p in held_out],
                        [p.rejected for p in held_out], scorer.score)["win_rate"]

    from labeling.judges.smollm import SmolLMJudge, SmolLMJudgeConfig

    judge = SmolLMJudge(SmolLMJudgeConfig(model_dir=base_dir))
    texts = [p.prompt_text() for p in held_out]
    local = local_judge_preferences(judge, texts, dpo_answers, base_answers)
    local_human = local_judge_preferences(judge, texts, [p.chosen for p in held_out], [p.rejected for p in held_out])
    points = {"a": 1.0, "tie": 0.5, "b": 0.0}
    kl = kl_to_reference(policy, base, prompts, samples_per_prompt=1, max_new_tokens=args.max_new_tokens, seed=0)

    print(json.dumps({
        "benchmark": "content_dpo",
        "win_rate_dpo_vs_base": judged["win_rate"],
        "win_rate_dpo_vs_base_local_judge": sum(points[c] for c in local) / len(local),
        "local_judge_ties": sum(c == "tie" for c in local),
        "mean_reward_dpo": judged["mean_reward_candidate"],
        "mean_reward_base": judged["mean_reward_baseline"],
        "ratio_win_rate_over_no_change": judged["win_rate"] / 0.5,
        "kl_to_reference_nats": kl["kl"],
        "kl_std_error": kl["kl_std_error"],
        "judge_agreement_with_humans": {
            "reward_model": rm_human,
            "local_judge": sum(points[c] for c in local_human) / len(local_human),
            "local_judge_ties": sum(c == "tie" for c in local_human),
        },
        "identical_answers": sum(a == b for a, b in zip(dpo_answers, base_answers)),
        "held_out_prompts": len(held_out),
        "train_pairs": len(examples),
        "dpo_wall_seconds": round(dpo_wall, 1) if not result.skipped else result.manifest.get("wall_seconds"),
        "dpo_cpu_seconds": round(dpo_cpu, 1),
        "dpo_load_average_start": round(load0, 2),
        "dpo_final_loss": result.metrics.get("train_loss"),
        "reward_model": str(args.reward_model),
        "recipe": {"training": {**recipe.training, **overrides}, "max_length": args.max_length},
        "machine": machine(),
    }))


if __name__ == "__main__":
    main()
