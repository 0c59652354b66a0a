"""Agreement of the local judges with human preference labels (HH-RLHF harmless dev pairs).

For each pair the human-chosen response is put on a seeded random side (A or B), both orders are
judged, and the position-debiased labels are scored against the humans (see
`labeling.evaluation`): agreement (a tie counts as a miss), agreement with ties worth half (a coin
scores 0.5), agreement on decided pairs, coverage, and the consistency rate across orders.

- SmolLM2-135M-Instruct (letter log-probabilities): its forward passes are made once and read
  with two decision rules, the judge's calibrated one (content-free answer bias removed) and the
  obvious alternative without calibration, so the ratio between them comes from the same run.
  `--smollm-limit` bounds the pairs (a CPU forward pass takes seconds).
- Reward-model judge: needs a trained reward model (`--reward-model PATH`, an artifact directory
  from `arbiter train reward`); none is trained here, and without one it is skipped with a note.
  A model trained on part of this file must be scored on pairs it never saw: `--rm-heldout N`
  keeps the N pairs that bench/rm_accuracy.py holds out (smallest sha256("heldout:" + pair hash)).

Prints one JSON line.

    .venv/bin/python bench/judge_agreement.py [--smollm-limit 60] [--reward-model var/artifacts/rm-1]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from labeling import FallbackChain, RewardModelJudge, SmolLMJudge, SmolLMJudgeConfig
from labeling.evaluation import comparisons_from_pairs, evaluate_chain, score_labels
from reward_models.pairs import read_pairs

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hh_harmless_dev.jsonl"


def smollm2_agreement(items, models_dir: Path, batch_size: int) -> dict:
    from tqdm.auto import tqdm

    from reward_models.local_models import smollm2_dir

    judge = SmolLMJudge(SmolLMJudgeConfig(model_dir=smollm2_dir(models_dir)))
    judge.load()
    started = time.perf_counter()
    with tqdm(total=2 * len(items), desc="smollm2 forward passes", unit="req") as bar:
        scores = judge.score_both_orders([item.comparison for item in items], batch_size, on_batch=bar.update)
    elapsed = time.perf_counter() - started
    humans = {item.comparison.id: item.human for item in items}
    figures = {}
    for rule, calibrated in (("calibrated", True), ("uncalibrated", False)):
        labels = [judge.label_from_scores(item.comparison.id, pair, calibrated=calibrated)
                  for item, pair in zip(items, scores)]
        figures[rule] = {key: None if v is None else round(v, 4) for key, v in score_labels(labels, humans).items()}
    return {
        "pairs": len(items),
        "answer_bias_logit": round(judge.answer_bias, 4),
        **figures,
        "agreement_ties_half_ratio_calibrated_vs_uncalibrated": round(
            figures["calibrated"]["agreement_ties_half"] / figures["uncalibrated"]["agreement_ties_half"], 3
        ),
        "seconds_per_pair": round(elapsed / len(items), 3),
    }


def reward_model_agreement(items, path: str | None) -> dict:
    if not path:
        return {"skipped": "no --reward-model given: train one with `arbiter train reward` and pass its artifact directory"}
    from reward_models import load_scorer

    scorer = load_scorer(path)
    judge = RewardModelJudge(scorer, model=getattr(scorer, "name", "") or Path(path).name)
    evaluation = asyncio.run(evaluate_chain(FallbackChain([judge]), items, concurrency=64, progress=True))
    figures = evaluation.to_dict()
    keep = ("pairs", "labeled", "agreement", "agreement_ties_half", "agreement_decided", "coverage", "consistency_rate", "elapsed_s")
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items() if k in keep}


def machine() -> dict:
    import torch

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # the machine is shared: context for the figures
        "torch": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--smollm-limit", type=int, default=60, help="pairs judged by SmolLM2 (0 skips it)")
    parser.add_argument("--rm-limit", type=int, default=None, help="pairs judged by the reward model (default all)")
    parser.add_argument("--reward-model", default=None, help="reward model artifact directory")
    parser.add_argument("--rm-heldout", type=int, default=None,
                        help="score the reward model only on bench/rm_accuracy.py's N held-out pairs")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"{args.data} not found: the HH-RLHF dev pairs are needed")

    pairs = read_pairs(args.data)
    items = comparisons_from_pairs(pairs, seed=args.seed)
    rm_items = items[: args.rm_limit] if args.rm_limit else items
    if args.rm_heldout:
        ranked = sorted(range(len(pairs)), key=lambda i: hashlib.sha256(("heldout:" + pairs[i].content_hash()).encode()).hexdigest())
        rm_items = [items[i] for i in sorted(ranked[: args.rm_heldout])]
    judges = {
        "local-smollm2": smollm2_agreement(items[: args.smollm_limit], args.models_dir, args.batch_size)
        if args.smollm_limit > 0
        else {"skipped": "--smollm-limit 0"},
        "local-rm": reward_model_agreement(rm_items, args.reward_model),
    }
    print(
        json.dumps(
            {
                "benchmark": "judge_agreement",
                "data": str(args.data),
                "pairs_available": len(pairs),
                "seed": args.seed,
                "chance_agreement_ties_half": 0.5,
                "judges": judges,
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
