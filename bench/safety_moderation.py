"""The local moderation chain before and after the trained moderation model: latency and flag rates.

Two chains, identical except for the harm provider (same normalisation, language detection,
profanity and injection detectors, no remote provider):

- before: the TF-IDF seed classifier (`train_harm_classifier([])`) + profanity, as shipped until now;
- after: the shipped local moderation model (`safety.moderation.harm_model`) + profanity.

Latency: every text moderated alone (p50 / p99 of one call), and in batches of 32 (p50 / p99 of a
batch call, and that divided by 32), after one warm-up call that loads the models; the two chains
alternate call by call, so a change in the host's load hits both. Flag rates (a
text counts as flagged when any harm provider flags it; profanity counted apart, since the verdict
policy ignores it on input): the functional suite's held-out half (`safety/data/moderation/
functional_suite.jsonl`, split by `safety.moderation.harm_data`), the hand-written benign and
harmful texts of `bench/data/safety_moderation_sets.json`, and, when present, the HH first turns
(a flag rate only; 70% of them are in the local model's training split, so it is no held-out figure). Held-out AUPRC / F1 / FPR per category come from the training
command (`scripts/train_moderation.py --json`), which needs the public data and cross-validates.
Prints one JSON line.

    .venv/bin/python bench/safety_moderation.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine
from _safety_moderation_sets import (
    BENIGN_QUESTIONS,
    BENIGN_REPLIES,
    FINAL_BENIGN,
    FINAL_HARMFUL,
    FINAL_REPLIES,
    FRESH_BENIGN,
    FRESH_HARMFUL,
    FRESH_REPLIES,
    HARMFUL,
    UNSEEN_BENIGN,
    UNSEEN_HARMFUL,
    UNSEEN_REPLIES,
)

from safety.language import default_language_detector
from safety.moderation import InjectionHeuristics, LocalModeration, Moderator, ProfanityModeration
from safety.moderation.harm_classifier import train_harm_classifier
from safety.moderation.harm_data import hh_first_turns, suite_cases

HH_PATH = REPO.parent / "shared" / "data" / "hh_harmless_dev.jsonl"
HARM_PROVIDERS = {"harm-classifier", "local-moderation"}


def chains() -> dict[str, Moderator]:
    language = default_language_detector()
    profanity, injection = ProfanityModeration(), InjectionHeuristics()
    return {
        "before": Moderator(None, [train_harm_classifier([]), profanity], [injection], language=language),
        "after": Moderator(None, [LocalModeration(), profanity], [injection], language=language),
    }


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def latency(built: dict[str, Moderator], texts: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    """Per chain: one text per call and batches of 32, the chains alternating call by call so that
    a change in the host's load (two cores shared with other work) hits both alike."""
    for chain in built.values():
        chain.moderate(texts[:32])  # warm-up: loads models and caches
    alone: dict[str, list[float]] = {name: [] for name in built}
    batches: dict[str, list[float]] = {name: [] for name in built}
    for text in tqdm(texts, desc="one text per call", leave=False, file=sys.stderr):
        for name, chain in built.items():
            start = time.perf_counter()
            chain.moderate([text])
            alone[name].append(time.perf_counter() - start)
    for _ in range(3):
        for i in range(0, len(texts) - 31, 32):
            for name, chain in built.items():
                start = time.perf_counter()
                chain.moderate(texts[i : i + 32])
                batches[name].append(time.perf_counter() - start)
    return {
        name: {
            "alone": _percentiles(alone[name]),
            "batch32": _percentiles(batches[name]),
            "batch32_per_text": _percentiles([b / 32 for b in batches[name]]),
        }
        for name in built
    }


def flags(chain: Moderator, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(harm flagged, profanity flagged) per text."""
    harm, profane = [], []
    for i in range(0, len(texts), 64):
        for report in chain.moderate(texts[i : i + 64]):
            harm.append(any(r.flagged for r in report.results if r.provider in HARM_PROVIDERS))
            profane.append(any(r.flagged for r in report.results if r.provider == "profanity"))
    return np.array(harm), np.array(profane)


def _rate(values: np.ndarray) -> float | None:
    return round(float(values.mean()), 4) if len(values) else None


def main() -> None:
    suite = [c for c in suite_cases() if c.split == "test"]
    benign = [*BENIGN_QUESTIONS, *BENIGN_REPLIES, *FRESH_BENIGN, *FRESH_REPLIES, *UNSEEN_BENIGN,
              *UNSEEN_REPLIES, *FINAL_BENIGN, *FINAL_REPLIES]
    harmful = [t for t, _ in [*HARMFUL, *FRESH_HARMFUL, *UNSEEN_HARMFUL, *FINAL_HARMFUL]]
    hh = hh_first_turns(HH_PATH) if HH_PATH.exists() else []
    built = chains()
    latency_texts = benign + harmful + [c.text for c in suite]
    out: dict = {"bench": "safety_moderation", "n": {
        "latency_texts": len(latency_texts), "suite_test": len(suite), "benign_written": len(benign),
        "harmful_written": len(harmful), "hh_first_turns": len(hh)}}
    timings = latency(built, latency_texts)
    for name, chain in built.items():
        figures: dict = {"latency": timings[name]}
        harm, profane = flags(chain, [c.text for c in suite])
        functions = sorted({c.function for c in suite})
        non_harmful = np.array([c.labels["unsafe"] == 0 for c in suite])
        lookalike = np.array([c.function == "lookalike" for c in suite])
        figures["suite_test_flag_rate"] = {
            "non_harmful": _rate(harm[non_harmful]),
            "non_harmful_with_profanity": _rate((harm | profane)[non_harmful]),
            "lookalike": _rate(harm[lookalike]),
            "harmful": _rate(harm[~non_harmful]),
            "by_function": {f: _rate(harm[np.array([c.function == f for c in suite])]) for f in functions},
        }
        figures["written_sets"] = {
            "benign_flag_rate": _rate(flags(chain, benign)[0]),
            "harmful_detection_rate": _rate(flags(chain, harmful)[0]),
        }
        if hh:
            figures["hh_first_turn_flag_rate"] = _rate(flags(chain, hh)[0])
        out[name] = figures
    before, after = out["before"]["latency"], out["after"]["latency"]
    out["latency_ratio_after_vs_before"] = {
        mode: {k: round(after[mode][k] / before[mode][k], 2) for k in before[mode]} for mode in before
    }
    out["machine"] = machine() | {"loadavg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
