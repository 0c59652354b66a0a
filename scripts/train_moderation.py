"""Train the local moderation model and print its held-out report as one JSON line.

    .venv/bin/python scripts/train_moderation.py --json                # ships into safety/data/moderation/model
    .venv/bin/python scripts/train_moderation.py --out var/models/moderation --dims 128

Reads the public data from `--data` (default ../shared/data; never copied into the project),
caches the MiniLM distillation under `--work` (default var/cache/moderation) and writes the report
next to the artifact's parent as `moderation_report.json` in `--work`. Progress goes to stderr.
See `safety.moderation.harm_training` for the steps.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from safety.moderation.harm_model import DEFAULT_MODEL_DIR  # noqa: E402
from safety.moderation.harm_training import evaluate_before, train_moderation_model  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR)
    parser.add_argument("--work", type=Path, default=REPO / "var" / "cache" / "moderation")
    parser.add_argument("--dims", type=int, default=256, help="embedding dimensions kept (PCA order)")
    parser.add_argument("--target-fpr", type=float, default=0.01, help="per-category FPR on validation")
    parser.add_argument("--unsafe-target-fpr", type=float, default=0.05, help="'unsafe' head FPR on validation")
    parser.add_argument("--suite-target-fpr", type=float, default=0.02,
                        help="per-category FPR on the functional suite's validation negatives (x2 for 'unsafe')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-before", action="store_true", help="skip scoring the old chain")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    args = parser.parse_args()
    start = time.perf_counter()

    def progress(message: str) -> None:
        print(f"[{time.perf_counter() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    report = train_moderation_model(
        args.data, args.out, args.work, dims=args.dims, target_fpr=args.target_fpr,
        unsafe_target_fpr=args.unsafe_target_fpr, suite_target_fpr=args.suite_target_fpr, seed=args.seed,
        progress=progress,
    )
    if not args.no_before:
        progress("scoring the old chain (TF-IDF seed classifier + profanity) on the same test partition")
        report = {"after": report, "before": evaluate_before(args.data, seed=args.seed)}
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "moderation_report.json").write_text(json.dumps(report, indent=1) + "\n")
    if args.json:
        print(json.dumps(report))
    else:
        progress(f"saved to {args.out}; report in {args.work / 'moderation_report.json'}")


if __name__ == "__main__":
    main()
