"""The labelled texts the local moderation model (`safety.moderation.harm_model`) learns from and is
measured on, with a train / validation / test split that depends only on each text.

Sources, and which categories each can speak to (a label a source cannot give is *unknown*, and
that category's head neither trains nor validates on the row):

- `davidson`: English tweets (Davidson et al. 2017). Majority "hate" -> hate; "neither" -> safe
  for every category; "offensive" -> not hate, everything else unknown (offensive is not harmful:
  training profanity as harm is what made the old chain flag "Fuck yeah, we won").
- `toxigen`: implicit hate vs neutral statements about 13 groups (Hartvigsen et al. 2022); the
  neutral ones are the "plain statements about groups" a moderation model must not flag.
- `hh`: the first human turns of the HH-RLHF harmless pairs, labelled with the full taxonomy by
  this project (`safety/data/moderation/hh_first_turn_labels.jsonl`, keyed by the SHA-256 of the
  turn: the file holds labels only, never the text; how they were made is in the README).
- `seed`: this project's seed set of the TF-IDF classifier (`safety.moderation.harm_seed`:
  hand-written sentences and expanded templates, one category each, the other harm categories
  unknown), sexual / sex-education sentences (`seed_sexual.jsonl`) and hard cases written like the
  suite's but not in it (`seed_hard_cases.jsonl`: counter-speech, negation, reports of violence,
  obituaries, look-alikes, and hateful or violent counterparts with the same words).
  Always in training: they were written as training data.
- `suite`: the functional suite (`functional_suite.jsonl`): counter-speech, negation, quoting,
  plain statements about groups, obituaries, safe look-alikes, non-hateful profanity, support and
  education, and hateful / threatening / unsafe counterparts. Never trained on: half validates
  (thresholds), half is the test set.

The public data is read from the directory given (`../shared/data` in development) and is never
copied into the project. This module does no training and knows nothing of embeddings.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from safety.moderation.taxonomy import OPENAI_CATEGORIES

__all__ = [
    "CATEGORIES",
    "HEADS",
    "SPLITS",
    "LabelledText",
    "load_dataset",
    "suite_cases",
]

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "moderation"

# The OpenAI moderation taxonomy, as far as this project has labels for it (none for self-harm's intent or
# instructions).
CATEGORIES = tuple(c for c in OPENAI_CATEGORIES if c not in ("self-harm/intent", "self-harm/instructions"))
# Categories with a learned head; "unsafe" is any category at all. The other sub-categories have
# too few labelled examples (under 20) to learn; the model derives them (see harm_model).
HEADS = ("unsafe", "harassment", "hate", "illicit", "illicit/violent", "self-harm", "sexual", "violence", "violence/graphic")
SPLITS = ("train", "validation", "test")

# Davidson is large and three quarters "offensive": a sample keeps the fit on two shared cores
# short without losing a hate or "neither" tweet.
DAVIDSON_OFFENSIVE_SAMPLE = 3000


@dataclass(frozen=True)
class LabelledText:
    """One text, its label per head (1, 0, or None for unknown), its source and split."""

    text: str
    labels: dict[str, int | None]
    source: str
    split: str
    function: str = ""  # the functional-suite case type ("counter_speech", "lookalike", ...)


def _split(text: str, source: str, seed: int) -> str:
    """70 / 15 / 15 by a hash of the text, so a text keeps its split across runs and machines."""
    bucket = int.from_bytes(hashlib.blake2b(f"{seed}:{text}".encode(), digest_size=8).digest(), "big") % 100
    if source == "seed":
        return "train"
    if source == "suite":
        return "validation" if bucket < 50 else "test"
    return "train" if bucket < 70 else "validation" if bucket < 85 else "test"


def _labels(categories: Iterable[str], known: Iterable[str] | None = None) -> dict[str, int | None]:
    """Head labels from a text's categories; heads outside `known` (default: all) are unknown."""
    cats = set(categories)
    cats |= {c.split("/")[0] for c in cats}  # a sub-category implies its parent
    heads = set(HEADS) if known is None else set(known)
    out: dict[str, int | None] = {h: (int(h in cats) if h in heads else None) for h in HEADS}
    if "unsafe" in heads:
        out["unsafe"] = int(bool(cats))
    return out


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _davidson(path: Path, seed: int) -> list[LabelledText]:
    import random

    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    offensive = [r for r in rows if r["class"] == "1"]
    random.Random(seed).shuffle(offensive)
    keep = [r for r in rows if r["class"] != "1"] + offensive[:DAVIDSON_OFFENSIVE_SAMPLE]
    out = []
    for row in keep:
        text = _clean_tweet(row["tweet"])
        if not text:
            continue
        if row["class"] == "0":
            labels = _labels(["hate"], known=("hate", "unsafe"))
        elif row["class"] == "2":
            labels = _labels([])
        else:  # offensive: not hate; whether it harasses anyone the votes do not say
            labels = _labels([], known=("hate",))
        out.append(LabelledText(text, labels, "davidson", _split(text, "davidson", seed)))
    return out


def _clean_tweet(text: str) -> str:
    """Retweet markers, handles, links and HTML entities are Twitter's, not the author's words."""
    text = re.sub(r"&amp;", "&", text)
    text = re.sub(r"&#?\w+;", " ", text)
    text = re.sub(r"\bRT\b|@\w+:?|https?://\S+", " ", text)
    return re.sub(r"\s+", " ", text).strip(" !:")


def _toxigen(path: Path, seed: int) -> list[LabelledText]:
    out = []
    for row in _jsonl(path):
        text = row["text"].strip()
        labels = _labels(["hate"] if row["label"] == "hate" else [])
        out.append(LabelledText(text, labels, "toxigen", _split(text, "toxigen", seed)))
    return out


def hh_first_turns(path: Path) -> list[str]:
    """The distinct first human turns of HH transcripts, in file order."""
    seen: dict[str, None] = {}
    for row in _jsonl(path):
        match = re.match(r"\s*Human: (.*?)\n\nAssistant:", row["chosen"], re.S)
        if match:
            seen.setdefault(match.group(1).strip(), None)
    return list(seen)


def _hh(path: Path, seed: int) -> list[LabelledText]:
    labels = {row["sha256"]: row["categories"] for row in _jsonl(DATA_DIR / "hh_first_turn_labels.jsonl")}
    out = []
    for text in hh_first_turns(path):
        key = hashlib.sha256(text.encode()).hexdigest()
        if key in labels:
            out.append(LabelledText(text, _labels(labels[key]), "hh", _split(text, "hh", seed)))
    return out


def _seed() -> list[LabelledText]:
    from safety.moderation.harm_seed import seed_examples

    out = []
    # The seed set of the TF-IDF classifier (hand-written sentences and expanded templates): its
    # support traffic and innocent uses of violent words ("kill the hanging process") are the hard
    # negatives the public sets lack.
    for text, label in seed_examples():
        if label == "safe":
            labels = _labels([])
        else:  # a threat sentence may also harass: only its own category and "unsafe" are known
            labels = _labels([label], known=(label, "unsafe"))
        out.append(LabelledText(text, labels, "seed", "train"))
    for row in [*_jsonl(DATA_DIR / "seed_sexual.jsonl"), *_jsonl(DATA_DIR / "seed_hard_cases.jsonl")]:
        known = None if not row["categories"] else (*row["categories"], "unsafe")
        out.append(LabelledText(row["text"], _labels(row["categories"], known), "seed", "train"))
    return out


def suite_cases(seed: int = 0) -> list[LabelledText]:
    """The functional suite with its validation / test split."""
    return [
        LabelledText(row["text"], _labels(row["categories"]), "suite", _split(row["text"], "suite", seed), row["function"])
        for row in _jsonl(DATA_DIR / "functional_suite.jsonl")
    ]


def load_dataset(public_dir: Path, seed: int = 0) -> list[LabelledText]:
    """Every labelled text. `public_dir` holds `hh_harmless_dev.jsonl` and `safety/` (Davidson,
    ToxiGen); a missing file is an error, because a model trained without it is another model."""
    public_dir = Path(public_dir)
    needed = {
        "davidson": public_dir / "safety" / "davidson_hate_offensive.csv",
        "toxigen": public_dir / "safety" / "toxigen_sentences.jsonl",
        "hh": public_dir / "hh_harmless_dev.jsonl",
    }
    missing = [str(p) for p in needed.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"public training data missing: {missing}")
    rows = [
        *_davidson(needed["davidson"], seed),
        *_toxigen(needed["toxigen"], seed),
        *_hh(needed["hh"], seed),
        *_seed(),
        *suite_cases(seed),
    ]
    # One text, one row: the first source to claim a text keeps it, so no text sits in two splits.
    unique: dict[str, LabelledText] = {}
    for row in rows:
        unique.setdefault(row.text.strip().lower(), row)
    return list(unique.values())
