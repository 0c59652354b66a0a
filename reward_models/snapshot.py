"""Dataset snapshots: the frozen training set a reward model is trained on.

A snapshot turns labeled comparisons (from humans, LLM judges, local models, reviewers) into a
list of chosen/rejected pairs by explicit, recorded rules, and freezes the result under a content
hash with a deterministic train/validation split. ``build_snapshot`` is a pure function: the same
labels and rules always give the same records, split and hash, whatever order the labels came in.

The rules, in the order they apply:

1. Labels whose source is not in ``rules.sources``, whose choice is ``discarded``, or whose
   confidence is below ``rules.min_confidence`` are dropped; so are the labels of a judge in
   ``rules.exclude_judges`` (judges measured at chance: ``judges_to_exclude`` decides which, from
   their agreement with humans and position consistency, by ``rules.min_judge_kappa`` /
   ``rules.min_judge_consistency``; a judge measured on fewer than ``rules.min_judge_labels``
   labels is not excluded, because an unmeasured judge is not known to be at chance).
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
    "JudgeMeasurement",
    "LabeledPair",
    "Snapshot",
    "SnapshotRecord",
    "SnapshotRules",
    "build_snapshot",
    "judges_to_exclude",
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
    judge: str | None = None  # which judge produced it (llm_judge / local_model labels)

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
    # Labels weighted by trust: the rule (thresholds) and the judges it excluded, both recorded and hashed.
    min_judge_kappa: float | None = None  # Cohen's kappa with the human majority; chance is 0
    min_judge_consistency: float | None = None  # share of labels unchanged by swapping the responses
    min_judge_labels: int = 20
    exclude_judges: tuple[str, ...] = ()

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
        if self.min_judge_labels < 1:
            raise ValueError(f"min_judge_labels must be at least 1, got {self.min_judge_labels}")
        # A list from YAML/JSON would make the dataclass unhashable and the hash order-dependent.
        object.__setattr__(self, "sources", tuple(sorted(set(self.sources))))
        object.__setattr__(self, "exclude_judges", tuple(sorted(set(self.exclude_judges))))


# Trust fields at these values are left out of the manifest and the hash: snapshots made before the rule
# existed keep their hash (and stay readable).
_TRUST_DEFAULTS = {"min_judge_kappa": None, "min_judge_consistency": None, "min_judge_labels": 20, "exclude_judges": ()}


def _rules_dict(rules: SnapshotRules) -> dict:
    out = {**asdict(rules), "sources": list(rules.sources)}
    if rules.min_judge_kappa is None and rules.min_judge_consistency is None and not rules.exclude_judges:
        for name in _TRUST_DEFAULTS:
            out.pop(name)
    else:
        out["exclude_judges"] = list(rules.exclude_judges)
    return out


@dataclass(frozen=True)
class JudgeMeasurement:
    """What the store measured about one judge: position consistency and Cohen's kappa with the human majority."""

    judge: str
    n_consistency: int = 0
    consistency: float | None = None
    n_kappa: int = 0
    kappa: float | None = None


def judges_to_exclude(measurements: Iterable[JudgeMeasurement], rules: SnapshotRules) -> dict[str, str]:
    """judge -> why its labels make no training pairs under ``rules`` (measured at chance), for every judge that fails.

    Example:
        >>> rules = SnapshotRules(min_judge_kappa=0.2, min_judge_consistency=0.6)
        >>> judges_to_exclude([JudgeMeasurement("local", 40, 0.3, 40, 0.0), JudgeMeasurement("gpt", 40, 0.95, 40, 0.7)], rules)
        {'local': 'position consistency 0.30 < 0.60 (n=40); kappa with humans 0.00 < 0.20 (n=40)'}
    """
    out = {}
    for m in measurements:
        reasons = []
        if (rules.min_judge_consistency is not None and m.consistency is not None
                and m.n_consistency >= rules.min_judge_labels and m.consistency < rules.min_judge_consistency):
            reasons.append(f"position consistency {m.consistency:.2f} < {rules.min_judge_consistency:.2f} (n={m.n_consistency})")
        if (rules.min_judge_kappa is not None and m.kappa is not None
                and m.n_kappa >= rules.min_judge_labels and m.kappa < rules.min_judge_kappa):
            reasons.append(f"kappa with humans {m.kappa:.2f} < {rules.min_judge_kappa:.2f} (n={m.n_kappa})")
        if reasons:
            out[m.judge] = "; ".join(reasons)
    return dict(sorted(out.items()))


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
    judge_exclusions: dict[str, str] = field(default_factory=dict)  # why each judge in rules.exclude_judges is out

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
            "rules": _rules_dict(self.rules),
            "n_pairs": self.n_pairs,
            "n_train": len(self.train),
            "n_validation": len(self.validation),
            "n_ties": sum(r.tie for r in self.train + self.validation),
            "by_source": dict(sorted(by_source.items())),
            "dropped": dict(sorted(self.dropped.items())),
            **({"judge_exclusions": dict(sorted(self.judge_exclusions.items()))} if self.judge_exclusions else {}),
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
            "rules": _rules_dict(rules),
            "train": [r.to_json() for r in train],
            "validation": [r.to_json() for r in validation],
        },
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def build_snapshot(labels: Iterable[LabeledPair], rules: SnapshotRules | None = None,
                   judge_exclusions: dict[str, str] | None = None) -> Snapshot:
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
        if label.judge is not None and label.judge in rules.exclude_judges:
            dropped["judge_excluded"] += 1
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
    return Snapshot(content_hash, rules, train, validation, dict(dropped), dict(judge_exclusions or {}))


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
    rules_obj["exclude_judges"] = tuple(rules_obj.get("exclude_judges", ()))
    rules = SnapshotRules(**rules_obj)
    splits = {}
    for name in ("train", "validation"):
        with open(directory / f"{name}.jsonl", encoding="utf-8") as fh:
            splits[name] = tuple(SnapshotRecord.from_json(json.loads(line)) for line in fh if line.strip())
    actual = _content_hash(manifest["version"], rules, splits["train"], splits["validation"])
    if actual != manifest["content_hash"]:
        raise ValueError(f"snapshot {directory} was modified: content hash {actual} != manifest {manifest['content_hash']}")
    return Snapshot(manifest["content_hash"], rules, splits["train"], splits["validation"], manifest.get("dropped", {}),
                    manifest.get("judge_exclusions", {}))
