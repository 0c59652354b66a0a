"""Dataset snapshots: the frozen training set a reward model is trained on.

A snapshot turns labeled comparisons (from humans, LLM judges, local models, reviewers) into a
list of chosen/rejected pairs by explicit, recorded rules, and freezes the result under a content
hash with a deterministic train/validation split. ``build_snapshot`` is a pure function: the same
labels and rules always give the same records, split and hash, whatever order the labels came in.

The rules, in the order they apply:

1. Labels whose source is not in ``rules.sources``, whose choice is ``discarded``, or whose
   confidence is below ``rules.min_confidence`` are dropped.
2. Labels are pooled per *content*: the same prompt with the same two responses is one pair,
   whichever comparison id it came under and whichever response was shown first (duplicates).
3. Within a pair only the labels of the highest-precedence source present count (by default
   human and reviewer labels override LLM and local-model labels on the same pair).
4. Those labels vote; a pair whose vote is split evenly is dropped as a conflict. The winning side
   (``a``, ``b`` or ``tie``) gets confidence = mean confidence of its votes x its share of votes.
5. Ties are dropped (``ties="drop"``) or kept as margin-0 pairs (``ties="margin_zero"``: the
   trainer sees them in both orders with margin 0, which pulls the two rewards together).
6. Each pair goes to validation when a hash of its content key falls under
   ``rules.validation_fraction``: stable under re-ordering and under adding new pairs.

This module does not read the database or train anything: labels come in as plain objects, files
come out (``write_snapshot``) as JSONL that ``reward_models.pairs.read_pairs`` also reads.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from .pairs import PreferencePair

__all__ = [
    "SOURCE_PRECEDENCE",
    "LabeledPair",
    "Snapshot",
    "SnapshotRecord",
    "SnapshotRules",
    "build_snapshot",
    "labeled_pairs_from_preferences",
    "read_snapshot",
    "write_snapshot",
]

Source = Literal["human", "reviewer", "llm_judge", "local_model"]
# Lower number wins. Reviewers are people auditing flagged decisions, so they rank with annotators.
# "outcome" labels come from observed rewards of logged decisions (the rewarded action preferred to
# another); they rank with the LLM judges, below people.
SOURCE_PRECEDENCE: dict[str, int] = {"human": 0, "reviewer": 0, "outcome": 1, "llm_judge": 1, "local_model": 2}
CHOICES = ("a", "b", "tie", "discarded")
SNAPSHOT_VERSION = 1


@dataclass(frozen=True)
class LabeledPair:
    """One label on one comparison: the app builds these from Comparison + Label rows."""

    comparison_id: str
    prompt: str
    response_a: str
    response_b: str
    choice: str  # a | b | tie | discarded
    confidence: float = 1.0
    source: str = "human"

    def __post_init__(self) -> None:
        if self.choice not in CHOICES:
            raise ValueError(f"label on {self.comparison_id!r}: choice {self.choice!r} is not one of {CHOICES}")
        if self.source not in SOURCE_PRECEDENCE:
            raise ValueError(f"label on {self.comparison_id!r}: unknown source {self.source!r}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"label on {self.comparison_id!r}: confidence {self.confidence} outside [0, 1]")


@dataclass(frozen=True)
class SnapshotRules:
    """How labels become training pairs; stored in the manifest and part of the content hash."""

    sources: tuple[str, ...] = ("human", "reviewer", "outcome", "llm_judge", "local_model")
    min_confidence: float = 0.0
    ties: Literal["drop", "margin_zero"] = "drop"
    validation_fraction: float = 0.1
    split_seed: str = "arbiter"

    def __post_init__(self) -> None:
        unknown = set(self.sources) - set(SOURCE_PRECEDENCE)
        if unknown or not self.sources:
            raise ValueError(f"sources must be a non-empty subset of {sorted(SOURCE_PRECEDENCE)}, got {self.sources}")
        if self.ties not in ("drop", "margin_zero"):
            raise ValueError(f"ties must be 'drop' or 'margin_zero', got {self.ties!r}")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be in [0, 1], got {self.min_confidence}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        # A list from YAML/JSON would make the dataclass unhashable and the hash order-dependent.
        object.__setattr__(self, "sources", tuple(sorted(set(self.sources))))


@dataclass(frozen=True)
class SnapshotRecord:
    """One training pair. For a tie, ``chosen``/``rejected`` are just the two responses."""

    key: str
    prompt: str
    chosen: str
    rejected: str
    confidence: float
    source: str
    tie: bool
    comparison_ids: tuple[str, ...]

    def to_json(self) -> dict:
        # "prompt"/"chosen"/"rejected" first so the file is also a valid pair file (prompt format).
        return {
            "prompt": self.prompt,
            "chosen": self.chosen,
            "rejected": self.rejected,
            "confidence": self.confidence,
            "source": self.source,
            "tie": self.tie,
            "key": self.key,
            "comparison_ids": list(self.comparison_ids),
        }

    @classmethod
    def from_json(cls, obj: dict) -> SnapshotRecord:
        return cls(
            key=obj["key"],
            prompt=obj["prompt"],
            chosen=obj["chosen"],
            rejected=obj["rejected"],
            confidence=float(obj["confidence"]),
            source=obj["source"],
            tie=bool(obj["tie"]),
            comparison_ids=tuple(obj["comparison_ids"]),
        )


@dataclass(frozen=True)
class Snapshot:
    """A frozen training set: records split into train/validation, its rules and its hash."""

    content_hash: str
    rules: SnapshotRules
    train: tuple[SnapshotRecord, ...]
    validation: tuple[SnapshotRecord, ...]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n_pairs(self) -> int:
        return len(self.train) + len(self.validation)

    def manifest(self) -> dict:
        by_source: dict[str, int] = defaultdict(int)
        for r in self.train + self.validation:
            by_source[r.source] += 1
        return {
            "version": SNAPSHOT_VERSION,
            "content_hash": self.content_hash,
            "rules": {**asdict(self.rules), "sources": list(self.rules.sources)},
            "n_pairs": self.n_pairs,
            "n_train": len(self.train),
            "n_validation": len(self.validation),
            "n_ties": sum(r.tie for r in self.train + self.validation),
            "by_source": dict(sorted(by_source.items())),
            "dropped": dict(sorted(self.dropped.items())),
        }


def _sha(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8"))
        h.update(b"\x00")  # separator, so ("ab", "c") and ("a", "bc") differ
    return h.hexdigest()


def _content_key(prompt: str, x: str, y: str) -> tuple[str, bool]:
    """Key of the unordered pair, and whether (x, y) is the canonical order."""
    canonical = x <= y
    first, second = (x, y) if canonical else (y, x)
    return _sha(prompt, first, second), canonical


def _in_validation(key: str, rules: SnapshotRules) -> bool:
    bucket = int(_sha(rules.split_seed, key)[:12], 16) / float(16**12)
    return bucket < rules.validation_fraction


def _content_hash(version: int, rules: SnapshotRules, train: Sequence[SnapshotRecord], validation: Sequence[SnapshotRecord]) -> str:
    payload = json.dumps(
        {
            "version": version,
            "rules": {**asdict(rules), "sources": list(rules.sources)},
            "train": [r.to_json() for r in train],
            "validation": [r.to_json() for r in validation],
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def build_snapshot(labels: Iterable[LabeledPair], rules: SnapshotRules | None = None) -> Snapshot:
    """Apply ``rules`` to ``labels`` and freeze the result (see the module docstring for the rules).

    Example:
        >>> snap = build_snapshot([LabeledPair("c1", "hi?", "hello!", "go away", "a", 0.9, "human")])
        >>> snap.n_pairs, snap.train[0].chosen if snap.train else snap.validation[0].chosen
        (1, 'hello!')
    """
    rules = rules or SnapshotRules()
    dropped: dict[str, int] = defaultdict(int)
    # key -> canonical (prompt, first, second) and the votes on it, oriented to the canonical order
    pairs: dict[str, tuple[str, str, str]] = {}
    votes: dict[str, list[tuple[str, float, str, str]]] = defaultdict(list)
    for label in labels:
        if label.response_a == label.response_b:
            dropped["identical_responses"] += 1
            continue
        if label.source not in rules.sources:
            dropped["source_excluded"] += 1
            continue
        if label.choice == "discarded":
            dropped["discarded"] += 1
            continue
        if label.confidence < rules.min_confidence:
            dropped["low_confidence"] += 1
            continue
        key, canonical = _content_key(label.prompt, label.response_a, label.response_b)
        first, second = (label.response_a, label.response_b) if canonical else (label.response_b, label.response_a)
        pairs[key] = (label.prompt, first, second)
        choice = label.choice
        if not canonical and choice != "tie":
            choice = "b" if choice == "a" else "a"
        votes[key].append((choice, label.confidence, label.source, label.comparison_id))

    records: list[SnapshotRecord] = []
    for key in sorted(pairs):
        ballot = votes[key]
        top = min(SOURCE_PRECEDENCE[s] for _, _, s, _ in ballot)
        overridden = [v for v in ballot if SOURCE_PRECEDENCE[v[2]] != top]
        dropped["overridden_by_precedence"] += len(overridden)
        ballot = [v for v in ballot if SOURCE_PRECEDENCE[v[2]] == top]
        counts: dict[str, int] = defaultdict(int)
        for choice, *_ in ballot:
            counts[choice] += 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            dropped["conflicting_labels"] += 1
            continue
        winner = ranked[0][0]
        if winner == "tie" and rules.ties == "drop":
            dropped["tie"] += 1
            continue
        won = [v for v in ballot if v[0] == winner]
        confidence = sum(v[1] for v in won) / len(won) * (len(won) / len(ballot))
        # The record's source is the best-ranked source among its winning votes, named stably.
        source = min(v[2] for v in won)
        prompt, first, second = pairs[key]
        chosen, rejected = (second, first) if winner == "b" else (first, second)
        records.append(
            SnapshotRecord(
                key=key,
                prompt=prompt,
                chosen=chosen,
                rejected=rejected,
                confidence=round(confidence, 6),
                source=source,
                tie=winner == "tie",
                comparison_ids=tuple(sorted({v[3] for v in ballot})),
            )
        )

    train = tuple(r for r in records if not _in_validation(r.key, rules))
    validation = tuple(r for r in records if _in_validation(r.key, rules))
    content_hash = _content_hash(SNAPSHOT_VERSION, rules, train, validation)
    dropped = {k: v for k, v in dropped.items() if v}
    return Snapshot(content_hash, rules, train, validation, dict(dropped))


def labeled_pairs_from_preferences(
    pairs: Sequence[PreferencePair], source: str = "human", confidence: float = 1.0
) -> list[LabeledPair]:
    """Labels for a plain preference file (every pair says: chosen beats rejected).

    The comparison id is the pair's content hash, so the same file always gives the same snapshot.
    """
    return [
        LabeledPair(p.content_hash()[:32], p.prompt_text(), p.chosen, p.rejected, "a", confidence, source)
        for p in pairs
    ]


def write_snapshot(snapshot: Snapshot, directory: str | Path) -> Path:
    """Write ``train.jsonl``, ``validation.jsonl`` and ``manifest.json`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, records in (("train", snapshot.train), ("validation", snapshot.validation)):
        with open(directory / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r.to_json(), ensure_ascii=False) + "\n" for r in records)
    (directory / "manifest.json").write_text(json.dumps(snapshot.manifest(), indent=2) + "\n", encoding="utf-8")
    return directory


def read_snapshot(directory: str | Path) -> Snapshot:
    """Read a snapshot written by ``write_snapshot``; refuses files that do not match the hash."""
    directory = Path(directory)
    manifest_path = directory / "manifest.json"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{directory} is not a snapshot: manifest.json is missing")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    rules_obj = dict(manifest["rules"])
    rules_obj["sources"] = tuple(rules_obj["sources"])
    rules = SnapshotRules(**rules_obj)
    splits = {}
    for name in ("train", "validation"):
        with open(directory / f"{name}.jsonl", encoding="utf-8") as fh:
            splits[name] = tuple(SnapshotRecord.from_json(json.loads(line)) for line in fh if line.strip())
    actual = _content_hash(manifest["version"], rules, splits["train"], splits["validation"])
    if actual != manifest["content_hash"]:
        raise ValueError(f"snapshot {directory} was modified: content hash {actual} != manifest {manifest['content_hash']}")
    return Snapshot(manifest["content_hash"], rules, splits["train"], splits["validation"], manifest.get("dropped", {}))
