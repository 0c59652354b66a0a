"""Personal-data detection on Arbiter's labelled PII suites: recall per kind, false redactions, latency.

The dev suite (`safety/data/pii_suite.jsonl`, looked at while the detectors were written) has positives per kind (e-mail incl. non-ASCII and
written-out, phone numbers in US/UK/German/French/... formats, cards incl. dotted, IBANs incl.
lowercase, SSNs incl. "SSN: 536221847", IPs, names, street addresses) and negatives that look like
personal data (software versions, order and tracking numbers, prices, dates, ISBNs, Luhn-failing
numbers, invalid IBANs and SSNs, log lines). The holdout suite (`safety/data/pii_holdout.jsonl`)
was written after the detectors were final and never used to change them: its figures are the
honest ones. Three detectors run on both:

- `regex`: the regex-only `safety/pii.py` this replaced (read from git at `BASELINE_COMMIT`);
- `patterns`: `safety.pii.PIIDetector(ner_model=None)` (Presidio, no NLP model: no names);
- `full`: `PIIDetector()` (Presidio + the packaged spaCy pipeline for names).

A labelled span counts as redacted when every character of it is inside some detection, and as
typed when a detection of its own kind covers it. A false redaction is a detection that overlaps no
labelled span; the false-redaction rate is the share of negative texts with any detection (and the
share of all texts with a spurious one). Rates carry Wilson 95% intervals. Latency is per text
(cache off), each text timed 3 times, p50/p99 over all timings; the machine's load average is
printed because the figures move with it.

The JSON line also says how far moderation scores move when the personal data is replaced by a
placeholder, a neutral stand-in or nothing (the reason `SafetyLayer` moderates the original text):
mean |score change| of the highest category score, and flips of a 0.5 threshold, over the suite's
positive texts alone and after "I will stab you tomorrow. ". And what the decision path spends on
a ticket's safety check with and without the name model (`decision_path_ms_per_ticket`: input
check with moderation, redacted context, scrubbed verdict).

    .venv/bin/python bench/pii.py
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine  # noqa: E402

# "dev" was looked at while the detectors were written; "holdout" was written after they were final.
SUITES = {"dev": REPO / "safety" / "data" / "pii_suite.jsonl", "holdout": REPO / "safety" / "data" / "pii_holdout.jsonl"}
BASELINE_COMMIT = "62fc825"  # the last commit with the regex-only safety/pii.py


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def regex_baseline():
    """The regex-only module, or None when git or the commit is not at hand."""
    try:
        source = subprocess.run(["git", "show", f"{BASELINE_COMMIT}:safety/pii.py"], cwd=REPO, check=True,
                                capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("pii_regex_baseline")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, "pii_regex_baseline.py", "exec"), module.__dict__)  # noqa: S102
    return lambda text: [(m.kind, m.start, m.end) for m in module.find_pii(text)]


def score(rows: list[dict], find) -> dict:
    per_kind: dict[str, list[int]] = {}
    typed: dict[str, int] = {}
    neg_flagged = neg_total = spurious_texts = 0
    timings: list[float] = []
    for row in rows:
        found = None
        for _ in range(3):
            started = time.perf_counter()
            found = find(row["text"])
            timings.append((time.perf_counter() - started) * 1000)
        labelled = []
        for item in row["pii"]:
            start = row["text"].index(item["text"])
            labelled.append((item["kind"], start, start + len(item["text"])))
        for kind, start, end in labelled:
            covered = all(any(s <= i < e for _, s, e in found) for i in range(start, end))
            is_typed = all(any(s <= i < e for k, s, e in found if k == kind) for i in range(start, end))
            per_kind.setdefault(kind, [0, 0])
            per_kind[kind][0] += covered
            per_kind[kind][1] += 1
            typed[kind] = typed.get(kind, 0) + is_typed
        spurious = [f for f in found if not any(f[1] < e and s < f[2] for _, s, e in labelled)]
        spurious_texts += bool(spurious)
        if not row["pii"]:
            neg_total += 1
            neg_flagged += bool(found)
    total_k = sum(v[0] for v in per_kind.values())
    total_n = sum(v[1] for v in per_kind.values())
    timings.sort()
    return {
        "recall": {k: {"redacted": round(v[0] / v[1], 4), "ci95": wilson(*v), "typed": round(typed[k] / v[1], 4),
                       "n": v[1]} for k, v in sorted(per_kind.items())},
        "recall_all": {"redacted": round(total_k / total_n, 4), "ci95": wilson(total_k, total_n), "n": total_n},
        "false_redaction_rate": {"negatives_with_any": round(neg_flagged / neg_total, 4),
                                 "ci95": wilson(neg_flagged, neg_total), "n": neg_total,
                                 "texts_with_spurious": round(spurious_texts / len(rows), 4),
                                 "ci95_spurious": wilson(spurious_texts, len(rows))},
        "latency_ms_per_text": {"p50": round(statistics.median(timings), 3),
                                "p99": round(timings[min(len(timings) - 1, int(0.99 * len(timings)))], 3)},
    }


def moderation_shift(rows: list[dict], detector) -> dict:
    """How far each stand-in for the personal data moves the local moderation's top score."""
    from safety.layer import default_moderator
    from safety.pii import PLACEHOLDERS

    neutral = {"email": "someone@example.com", "phone": "555 0100", "card": "the card", "iban": "the account",
               "ssn": "the number", "ip": "the server", "address": "the address", "person": "Alex"}
    moderator = default_moderator()
    texts = [r["text"] for r in rows if r["pii"]]
    texts += ["I will stab you tomorrow. " + t for t in texts]

    def top(batch: list[str]) -> list[float]:
        return [max((s for res in rep.results if res.provider != "injection-heuristics" for s in res.scores.values()),
                    default=0.0) for rep in moderator.moderate(batch)]

    def variant(text: str, how: str) -> str:
        out, cursor = [], 0
        for m in detector.find(text):
            out += [text[cursor:m.start], {"placeholder": PLACEHOLDERS[m.kind], "neutral": neutral[m.kind],
                                            "removed": ""}[how]]
            cursor = m.end
        return "".join([*out, text[cursor:]])

    original = top(texts)
    result = {"texts": len(texts)}
    for how in ("placeholder", "neutral", "removed"):
        moved = top([variant(t, how) for t in texts])
        deltas = [abs(a - b) for a, b in zip(original, moved, strict=True)]
        result[how] = {"mean_abs_change": round(statistics.fmean(deltas), 4), "max_abs_change": round(max(deltas), 4),
                       "flips_at_0.5": sum((a >= 0.5) != (b >= 0.5) for a, b in zip(original, moved, strict=True))}
    return result


def decision_path(rows: list[dict]) -> dict:
    """The safety work of one ticket decision that touches personal data, per ticket: the input check
    (rules, including the PII rule, and moderation), the redacted context, and the scrubbed verdict that
    is stored. Run with each process-wide detector. Every ticket's text is new to the detector's cache,
    as in production; the rule set's own messages are cached after the first ticket, as in production."""
    from app.services.serving.decisions import redacted_context
    from safety.layer import SafetyLayer
    from safety.pii import redact_values, use_pii_detector

    layer = SafetyLayer.build()
    tickets = [{"subject": r["text"][:40], "body": r["text"], "customer": {"tier": "standard", "language": "en"}}
               for r in rows]
    result = {}
    for choice in ("none", "auto"):
        use_pii_detector(choice)
        timings = []
        for ticket in tickets:
            started = time.perf_counter()
            text = f"{ticket['subject']}\n{ticket['body']}"
            verdict = layer.check_input("ticket-routing", context=ticket, text=text)
            redacted_context(ticket, text)
            redact_values(verdict.to_dict())
            timings.append((time.perf_counter() - started) * 1000)
        timings.sort()
        result["patterns_only" if choice == "none" else "with_names"] = {
            "p50": round(statistics.median(timings), 2), "p99": round(timings[int(0.99 * (len(timings) - 1))], 2)}
    use_pii_detector("auto")
    return result


def main() -> None:
    from tqdm import tqdm

    from safety.pii import PIIDetector

    suites = {name: [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
              for name, path in SUITES.items()}
    out: dict = {"bench": "pii", "suites": {name: {"texts": len(rows), "positives": sum(bool(r["pii"]) for r in rows),
                                                   "negatives": sum(not r["pii"] for r in rows)}
                                            for name, rows in suites.items()}}
    started = time.perf_counter()
    full = PIIDetector(cache_size=0)
    out["ner_model"] = full.ner_model
    out["ner_load_s"] = round(time.perf_counter() - started, 2)
    detectors = {"regex": regex_baseline(),
                 "patterns": (lambda d: lambda t: [(m.kind, m.start, m.end) for m in d.find(t)])(
                     PIIDetector(ner_model=None, cache_size=0)),
                 "full": lambda t: [(m.kind, m.start, m.end) for m in full.find(t)]}
    for suite, rows in suites.items():
        out[suite] = {}
        for name, find in tqdm(detectors.items(), desc=f"{suite} suite", file=sys.stderr):
            if find is None:
                out[suite][name] = "unavailable (git show failed)"
                continue
            for row in rows[:5]:  # warm-up: the first call of a spaCy pipeline or a regex is slower
                find(row["text"])
            out[suite][name] = score(rows, find)
    # The demo's simulated tickets hold no personal data: any detection is a false redaction. (Seed
    # 123's greetings and plan names were added to safety/data/pii_not_names.txt, so this is a dev figure.)
    from policies.simulator import TicketSimulator

    simulated = [t.text for t in TicketSimulator(seed=123).tickets(300)]
    flagged = sum(bool(full.find(t)) for t in simulated)
    out["simulated_tickets"] = {"texts": len(simulated), "with_any_redaction": flagged,
                                "rate": round(flagged / len(simulated), 4), "ci95": wilson(flagged, len(simulated))}
    print("moderation shift ...", file=sys.stderr)
    out["moderation_shift"] = moderation_shift(suites["dev"], full)
    print("decision path ...", file=sys.stderr)
    out["decision_path_ms_per_ticket"] = decision_path(suites["dev"])
    out["machine"] = {**machine(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
