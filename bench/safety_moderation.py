"""How often the local moderation flags benign support traffic, and how much harm it still catches.

Runs the safety layer with its default local providers (harm classifier trained on the seed set,
profanity, injection heuristics; no OpenAI) over the texts of `bench/_safety_moderation_sets.py`:

- benign: 300 simulated support tickets (`policies.simulator.TicketSimulator(seed=123)`) and the
  hand-written customer questions (input stage) and agent replies (output stage), the `unseen_`
  ones written after the seed set was final and never used for tuning;
- harmful (input stage): the held-out set (not in the seed, but looked at while the seed set was
  extended, so an optimistic figure) and the unseen set (never used for tuning: the honest one);
- for reference, when /work/shared/data/hh_harmless_dev.jsonl exists: the human first turns of
  HH-RLHF harmless (red-team prompts, many but not all harmful; no labels, so a flag rate only) and
  the chosen replies (input / output stage; mostly benign, some quote or give the harm asked for).

No bench text is a seed text (checked). A text counts as flagged when its verdict has a
moderation reason (escalate or block); rule reasons (PII redaction, length) are not moderation and
are not counted. The same texts go through two obvious alternatives, the profanity model alone and
a keyword list, and the JSON line carries the ratios. Fit times depend on the host's load, so the
`machine` object carries the 1-minute load average. Prints one JSON line.

    .venv/bin/python bench/safety_moderation.py
"""

from __future__ import annotations

import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

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

from safety import SafetyLayer
from safety.layer import Check
from safety.moderation import ProfanityModeration, seed_examples, train_harm_classifier

HELD_OUT = HARMFUL + FRESH_HARMFUL
HH_PATH = Path("/work/shared/data/hh_harmless_dev.jsonl")

# The obvious alternative to a trained classifier: a list of alarming words.
KEYWORDS = re.compile(
    r"\b(kill\w*|murder\w*|shoot\w*|stab\w*|bomb\w*|poison\w*|explosive\w*|gun|knife|attack\w*|hurt|"
    r"die|dead|suicide|overdose|cut|hang|idiot|moron\w*|stupid|loser|dumb\w*|pathetic|scum\w*|"
    r"drug\w*|meth\w*|cocaine|fentanyl|heroin|steal\w*|stolen|hack\w*|launder\w*|counterfeit|"
    r"fake|forge\w*|smuggl\w*|bribe\w*|ransomware|phishing)\b",
    re.IGNORECASE,
)


def _normalise(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def _rate(flags: list[bool]) -> float | None:
    return round(sum(flags) / len(flags), 4) if flags else None


def _by_category(flags: list[bool], pairs: list[tuple[str, str]]) -> dict[str, float | None]:
    categories = sorted({c for _, c in pairs})
    return {c: _rate([f for f, (_, cat) in zip(flags, pairs, strict=True) if cat == c]) for c in categories}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def layer_flags(layer: SafetyLayer, texts: list[str], stage: str, batch: int = 64) -> list[bool]:
    """Whether each text's verdict has a moderation reason (what puts it in the review queue)."""
    flags: list[bool] = []
    for start in tqdm(range(0, len(texts), batch), desc=f"layer {stage}", leave=False, file=sys.stderr):
        chunk = texts[start : start + batch]
        checks = [Check({"message": t}, (), None, t) for t in chunk]
        verdicts = (layer.check_inputs if stage == "input" else layer.check_outputs)("content", checks)
        flags.extend(any(r.source == "moderation" for r in v.reasons) for v in verdicts)
    return flags


def hh_sets() -> dict[str, tuple[list[str], str]]:
    if not HH_PATH.exists():
        return {}
    from reward_models.pairs import read_pairs

    pairs = read_pairs(HH_PATH, skip_invalid=True)
    first_turns = [p.prompt[0].content for p in pairs if p.prompt and p.prompt[0].role == "user"]
    return {"hh_first_turns": (first_turns, "input"), "hh_chosen_replies": ([p.chosen for p in pairs], "output")}


def main() -> None:
    from policies.simulator import TicketSimulator

    seed_texts = {_normalise(t) for t, _ in seed_examples()}
    written = [*BENIGN_QUESTIONS, *BENIGN_REPLIES, *FRESH_BENIGN, *FRESH_REPLIES, *UNSEEN_BENIGN, *UNSEEN_REPLIES]
    written += [*FINAL_BENIGN, *FINAL_REPLIES] + [t for t, _ in [*HELD_OUT, *UNSEEN_HARMFUL, *FINAL_HARMFUL]]
    leaked = [t for t in written if _normalise(t) in seed_texts]
    if leaked:  # a held-out text the classifier was trained on would measure nothing
        raise SystemExit(f"bench texts found in the seed set: {leaked}")
    fit_s, fit_cpu_s = [], []
    for _ in tqdm(range(3), desc="fit", leave=False, file=sys.stderr):
        start, start_cpu = time.perf_counter(), time.process_time()
        train_harm_classifier([])
        fit_s.append(time.perf_counter() - start)
        fit_cpu_s.append(time.process_time() - start_cpu)

    start = time.perf_counter()
    layer = SafetyLayer.build()
    build_s = time.perf_counter() - start
    sets: dict[str, tuple[list[str], str]] = {
        "tickets": ([t.text for t in TicketSimulator(seed=123).tickets(300)], "input"),
        "support_questions": (BENIGN_QUESTIONS + FRESH_BENIGN, "input"),
        "support_replies": (BENIGN_REPLIES + FRESH_REPLIES, "output"),
        "unseen_questions": (UNSEEN_BENIGN + FINAL_BENIGN, "input"),
        "unseen_replies": (UNSEEN_REPLIES + FINAL_REPLIES, "output"),
        "final_questions": (FINAL_BENIGN, "input"),
        "final_replies": (FINAL_REPLIES, "output"),
        "harmful_heldout": ([t for t, _ in HELD_OUT], "input"),
        "harmful_unseen": ([t for t, _ in UNSEEN_HARMFUL + FINAL_HARMFUL], "input"),
        "harmful_final": ([t for t, _ in FINAL_HARMFUL], "input"),
        **hh_sets(),
    }
    profanity = ProfanityModeration()
    methods = {
        "local_moderation": lambda texts, stage: layer_flags(layer, texts, stage),
        "profanity_only": lambda texts, stage: [r.flagged for r in profanity.classify(texts)],
        "keywords": lambda texts, stage: [bool(KEYWORDS.search(t)) for t in texts],
    }
    flags: dict[str, dict[str, list[bool]]] = {m: {} for m in methods}
    seconds: dict[str, float] = {}
    for method, run in methods.items():
        start = time.perf_counter()
        for name, (texts, stage) in sets.items():
            flags[method][name] = run(texts, stage)
        seconds[method] = round(time.perf_counter() - start, 2)

    benign = ("tickets", "support_questions", "support_replies", "unseen_questions", "unseen_replies")
    harmful_sets = {
        "harmful_heldout": HELD_OUT,
        "harmful_unseen": UNSEEN_HARMFUL + FINAL_HARMFUL,
        "harmful_final": FINAL_HARMFUL,
    }
    figures: dict[str, dict] = {}
    for method, by_set in flags.items():
        all_benign = [f for name in benign for f in by_set[name]]
        figures[method] = {
            "fp_rate": {name: _rate(by_set[name]) for name in benign}
            | {"final": _rate(by_set["final_questions"] + by_set["final_replies"]), "all_benign": _rate(all_benign)},
            "detection_rate": {name: _rate(by_set[name]) for name in harmful_sets},
            "detection_by_category": {name: _by_category(by_set[name], pairs) for name, pairs in harmful_sets.items()},
            "hh_flag_rate": {name: _rate(by_set[name]) for name in by_set if name.startswith("hh_")},
            "seconds": seconds[method],
        }
    local, mine = figures["local_moderation"], flags["local_moderation"]
    out = {
        "bench": "safety_moderation",
        "n": {name: len(texts) for name, (texts, _) in sets.items()},
        # Wall time depends on what else the host runs; CPU time (one thread) much less so.
        "harm_classifier_fit_s_median": round(statistics.median(fit_s), 3),
        "harm_classifier_fit_cpu_s_median": round(statistics.median(fit_cpu_s), 3),
        "layer_build_s": round(build_s, 2),
        **figures,
        **{
            f"ratios_local_vs_{other}": {
                "fp_all_benign": _ratio(local["fp_rate"]["all_benign"], figures[other]["fp_rate"]["all_benign"]),
                **{
                    f"detection_{name}": _ratio(local["detection_rate"][name], figures[other]["detection_rate"][name])
                    for name in harmful_sets
                },
            }
            for other in ("keywords", "profanity_only")
        },
        "local_false_positives": [t for name in benign[1:] for f, t in zip(mine[name], sets[name][0], strict=True) if f],
        "local_missed_harmful": [
            t for name in harmful_sets for f, t in zip(mine[name], sets[name][0], strict=True) if not f
        ][:12],
        "machine": machine() | {"loadavg_1m": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
