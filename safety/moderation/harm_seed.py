"""The seed training set of the TF-IDF harm classifier (`safety.moderation.harm_classifier`).

The phrase banks are data files under `safety/data/moderation/`: `seed_templates.yaml` (templates
with `{slot}` fillers) and `seed_sentences.jsonl` (hand-written sentences, one `{"text", "label"}`
per line). This module expands and samples them with a fixed seed, so the set is identical on
every machine and small enough (about 2,200 texts) to train in about a second.

Every example says whether it was written as a `sentence` (one by one, like real traffic) or
expanded from a `template` (near-copies of each other). The classifier calibrates its thresholds on
held-out sentences only: a held-out template text has a near-copy in training, so its score would
make any threshold look precise.

The "safe" class is several times larger than any harm class and deliberately holds customer-
support traffic and the innocent uses of violent words ("kill the process", "shoot me an email"),
so the classifier learns intent phrases rather than words. It is a starting point for reviewer
retraining, not the shipped moderation model (that is `safety.moderation.harm_model`, trained on
public data): the phrase banks are English only and short.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

__all__ = ["HARM_CATEGORIES", "SAFE_LABEL", "SeedExample", "seed_examples", "seed_set"]

SAFE_LABEL = "safe"
HARM_CATEGORIES = ("harassment", "illicit", "self-harm", "violence")

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "moderation"

_PER_CATEGORY = 150
# Real traffic is overwhelmingly harmless and unlike any template; a larger, more varied "safe"
# class keeps unfamiliar text from being pushed into a harm category by default.
_SAFE_FACTOR = 6


@dataclass(frozen=True)
class SeedExample:
    """One seed example and how it was written: `sentence` or expanded from a `template`."""

    text: str
    label: str
    kind: Literal["sentence", "template"]


@cache
def _banks() -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    """(templates by label, slot fillers by name, hand-written sentences by label), read once."""
    banks = yaml.safe_load((DATA_DIR / "seed_templates.yaml").read_text(encoding="utf-8"))
    sentences: dict[str, list[str]] = {}
    for line in (DATA_DIR / "seed_sentences.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            sentences.setdefault(row["label"], []).append(row["text"])
    return banks["templates"], banks["slots"], sentences


def _expand(template: str) -> list[str]:
    slots = _banks()[1]
    names = [name for name in slots if "{" + name + "}" in template]
    combos = itertools.product(*(slots[name] for name in names))
    return [template.format(**dict(zip(names, combo, strict=True))) for combo in combos]


def _sample_templates(label: str, quota: int, rng: random.Random) -> list[SeedExample]:
    pools = []
    for template in _banks()[0][label]:
        texts = _expand(template)
        rng.shuffle(texts)
        # A template that is a single slot is a list of sentences, not a frame.
        kind = "sentence" if re.fullmatch(r"\{\w+\}", template) else "template"
        pools.append([SeedExample(text, label, kind) for text in texts])
    # Round-robin over the templates so that no single template dominates a label.
    chosen: list[SeedExample] = []
    for round_ in itertools.zip_longest(*pools):
        chosen.extend(e for e in round_ if e is not None)
        if len(chosen) >= quota:
            break
    return chosen[:quota]


def seed_set(per_category: int = _PER_CATEGORY, seed: int = 0) -> list[SeedExample]:
    """The seed examples and how each was written: up to `per_category` template texts per harm category
    (`_SAFE_FACTOR` times that for "safe"), plus every hand-written sentence.

    Example:
        >>> sorted({e.label for e in seed_set(per_category=5)})
        ['harassment', 'illicit', 'safe', 'self-harm', 'violence']
    """
    if per_category < 1:
        raise ValueError(f"per_category must be >= 1, got {per_category}")
    rng = random.Random(seed)
    templates, _, sentences = _banks()
    examples: list[SeedExample] = []
    for label in templates:
        quota = per_category * _SAFE_FACTOR if label == SAFE_LABEL else per_category
        examples.extend(_sample_templates(label, quota, rng))
        examples.extend(SeedExample(text, label, "sentence") for text in sentences.get(label, ()))
    # The same sentence can come out of two templates; keep its first label so the set is consistent.
    unique: dict[str, SeedExample] = {}
    for example in examples:
        unique.setdefault(example.text.lower(), example)
    return list(unique.values())


def seed_examples(per_category: int = _PER_CATEGORY, seed: int = 0) -> list[tuple[str, str]]:
    """(text, label) pairs of `seed_set`.

    Example:
        >>> sorted({label for _, label in seed_examples(per_category=5)})
        ['harassment', 'illicit', 'safe', 'self-harm', 'violence']
    """
    return [(e.text, e.label) for e in seed_set(per_category, seed)]
