"""Prompt-injection detection before vs after, on the labelled suite's held-out half.

The suite (`safety/data/injection/suite.jsonl`) holds attacks (plain and indirect injections, prompt
leaks, fake chat turns, role-play and jailbreaks; in English, Spanish, German, French, Portuguese,
Italian and Dutch; base64, ROT13, hex, URL-encoded, Cyrillic look-alikes, leetspeak, zero-width and
spaced-out letters) and look-alikes (support tickets that ignore a previous e-mail, system
information, pasted logs and chat transcripts, base64 attachments, URL-encoded links), every
sentence written for this project, in three splits:

- `dev`: what the phrase bank was tuned on (it includes a first "unseen" set of 40, moved here
  after it had been measured once: 11/20 attacks caught, 1/20 look-alikes flagged);
- `held-out`: written together with `dev`, before tuning, never tuned on; the same author's
  phrasing habits, so an optimistic estimate;
- `unseen`: 40 texts written after the phrase bank was final and measured once, never tuned on:
  the figure closest to new phrasings (paraphrases the bank has no pattern for are missed).

None of it is a public benchmark.

"before" is the detector as it was at commit `BASELINE` (English patterns, no decoding), loaded
from git; "after" is the current `InjectionHeuristics`. Rates carry 95% Wilson intervals (scipy).
Prints one JSON line.

    .venv/bin/python bench/injection.py
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from scipy.stats import binomtest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine

from safety.moderation.injection import InjectionHeuristics

SUITE = REPO / "safety" / "data" / "injection" / "suite.jsonl"
BASELINE = "45a2d18"  # the last commit with the English-only, non-decoding heuristics


def _baseline_detector():
    """The detector as of BASELINE, from git (None when git or the commit is not available)."""
    try:
        source = subprocess.run(
            ["git", "show", f"{BASELINE}:safety/moderation/injection.py"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path(tempfile.mkdtemp()) / "injection_baseline.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("injection_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["injection_baseline"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module.InjectionHeuristics()


def _rate(k: int, n: int) -> dict:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson") if n else None
    return {
        "k": k,
        "n": n,
        "rate": round(k / n, 4) if n else None,
        "ci95": [round(ci.low, 4), round(ci.high, 4)] if ci else None,
    }


def _evaluate(detector, rows: list[dict]) -> dict:
    flags = [r.flagged for r in detector.classify([row["text"] for row in rows])]
    attacks = [f for f, row in zip(flags, rows, strict=True) if row["label"] == 1]
    benign = [f for f, row in zip(flags, rows, strict=True) if row["label"] == 0]
    by_technique: dict[str, list[bool]] = defaultdict(list)
    for f, row in zip(flags, rows, strict=True):
        if row["label"] == 1:
            by_technique[row["technique"]].append(f)
    return {
        "caught": _rate(sum(attacks), len(attacks)),
        "false_flags": _rate(sum(benign), len(benign)),
        "caught_by_technique": {t: f"{sum(v)}/{len(v)}" for t, v in sorted(by_technique.items())},
    }


def main() -> None:
    rows = [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines() if line.strip()]
    splits = {s: [r for r in rows if r["split"] == s] for s in ("dev", "held-out", "unseen")}
    after = InjectionHeuristics()
    before = _baseline_detector()
    result: dict = {"bench": "injection", "suite": str(SUITE.relative_to(REPO)), "baseline_commit": BASELINE}
    for name, detector in (("before", before), ("after", after)):
        if detector is None:
            result[name] = "baseline not available (needs git and commit %s)" % BASELINE
            continue
        result[name] = {split: _evaluate(detector, split_rows) for split, split_rows in splits.items()}
        for split in ("held-out", "unseen"):
            print(f"{name}: {split} caught {result[name][split]['caught']['rate']}, "
                  f"false flags {result[name][split]['false_flags']['rate']}", file=sys.stderr)
    timings = []
    for row in rows:
        start = time.perf_counter()
        after.classify([row["text"]])
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    result["latency_ms_per_text"] = {
        "p50": round(statistics.median(timings), 3),
        "p99": round(timings[min(len(timings) - 1, int(0.99 * len(timings)))], 3),
    }
    result["machine"] = machine()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
