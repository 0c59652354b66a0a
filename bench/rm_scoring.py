"""Scoring throughput: the batched, length-bucketed RewardScorer vs one pair at a time.

Scores both responses of ``--pairs`` HH-RLHF harmless dev pairs with the same model twice, in the
same run: once through ``RewardScorer.score_pairs`` on the whole list (length-sorted batches under
``torch.inference_mode``), once pair by pair with ``batch_size=1`` (the obvious alternative: what
a caller looping over requests would do). Checks that both give the same rewards.

Prints ONE JSON line with pairs/s for each, the speed-up ratio, the largest reward difference and
a ``machine`` object. The model defaults to the packaged all-MiniLM-L6-v2 with a fresh reward head
(throughput does not depend on the head's weights); pass ``--model`` for a trained artifact.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from _machine import torch_machine as machine  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "hh_harmless_dev.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="artifact or model directory (default: packaged MiniLM)")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--pairs", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats of each method (best is reported)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import numpy as np
    import torch

    from reward_models.local_models import minilm_dir
    from reward_models.pairs import read_pairs
    from reward_models.scoring import RewardScorer

    data = Path(args.data)
    if not data.exists():
        print(json.dumps({"skipped": f"{data} is absent (the shared HH-RLHF dev data)", "machine": machine()}))
        return
    pairs = read_pairs(data)[: args.pairs]
    prompts = [p.prompt_text() for p in pairs]
    chosen, rejected = [p.chosen for p in pairs], [p.rejected for p in pairs]

    torch.manual_seed(0)  # a fresh head is random; make the run repeatable
    model_path = Path(args.model) if args.model else minilm_dir()
    batched = RewardScorer.load(model_path, batch_size=args.batch_size)
    # The same weights, scored one pair at a time.
    single = RewardScorer(batched.model, batched.tokenizer, batched.encoding, batched.temperature, batch_size=1)

    def run_batched():
        return batched.score_pairs(prompts, chosen, rejected)

    def run_single():
        out = [single.score_pairs([p], [c], [r]) for p, c, r in zip(prompts, chosen, rejected)]
        return np.concatenate([a for a, _ in out]), np.concatenate([b for _, b in out])

    run_batched()  # warm-up: first-call allocations and lazy initialisation
    timings = {}
    results = {}
    for name, fn in (("batched", run_batched), ("one_at_a_time", run_single)):
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            results[name] = fn()
            best = min(best, time.perf_counter() - start)
        timings[name] = best
    diff = max(
        float(np.max(np.abs(results["batched"][0] - results["one_at_a_time"][0]))),
        float(np.max(np.abs(results["batched"][1] - results["one_at_a_time"][1]))),
    )
    batched_rate = len(pairs) / timings["batched"]
    single_rate = len(pairs) / timings["one_at_a_time"]
    print(
        json.dumps(
            {
                "benchmark": "rm_scoring",
                "model": args.model or "all-MiniLM-L6-v2 (packaged, fresh reward head)",
                "pairs": len(pairs),
                "batch_size": args.batch_size,
                "max_length": batched.encoding.max_length,
                "batched_pairs_per_s": round(batched_rate, 2),
                "one_at_a_time_pairs_per_s": round(single_rate, 2),
                "speedup": round(batched_rate / single_rate, 2),
                "max_abs_reward_diff": diff,
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
