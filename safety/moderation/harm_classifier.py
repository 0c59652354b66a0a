"""The local harm classifier: word + character TF-IDF features, logistic regression, and per-category
thresholds calibrated for a target precision and false-positive budget; retrainable from verdicts.

It answers when the OpenAI moderation endpoint is not configured or fails, and it moderates every
decision and chat message, so it must always work and must not flag ordinary support traffic. It
trains in under two seconds of CPU on the seed set from `safety.moderation.harm_seed`, and every
retrain from reviewer verdicts is saved as a new numbered artifact directory
(`harm-classifier-v0003/` holding `model.joblib` and `meta.json` with the calibrated
`thresholds`), never overwriting an old one, so a bad retrain can be rolled back by loading the
previous version.

Labels are category names; "safe" is the negative class. A category is flagged when its own
probability reaches its threshold. The thresholds are calibrated by
`safety.moderation.harm_calibration` on out-of-fold predictions for the hand-written sentences
(seed sentences and reviewer examples; template texts always train): each is the lowest on a grid
from 0.2 at which that category's flags reach `target_precision` and flag at most
`max_false_positive_rate` of the safe sentences (the product needs the second: a flag puts a
request in the review queue). Then the final model is fitted on everything. Reviewer examples get
a higher sample weight than seed examples because they are scarce corrections of exactly the
cases the seed got wrong.

What this module does not do: decide what a flag means (see `safety.verdict`), fetch verdicts
from the store (the app exports them and calls `retrain`), or understand text beyond its words and
character n-grams: paraphrases far from the seed and reviewer examples go unnoticed, which is why
the OpenAI endpoint stays the primary provider when configured.

Artifacts are joblib pickles: load only files this service wrote.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from threadpoolctl import threadpool_limits

from safety.moderation.base import ModerationResult
from safety.moderation.harm_calibration import (
    DEFAULT_MAX_FALSE_POSITIVE_RATE,
    DEFAULT_TARGET_PRECISION,
    N_FOLDS,
    calibrate_thresholds,
    folds,
    out_of_fold,
)
from safety.moderation.harm_seed import SAFE_LABEL, seed_set

__all__ = [
    "HarmClassifier",
    "HarmClassifierArtifact",
    "latest_artifact",
    "load_harm_classifier",
    "retrain",
    "save_harm_classifier",
    "train_harm_classifier",
]

ARTIFACT_PREFIX = "harm-classifier-v"
_VERSION_DIR = re.compile(rf"^{re.escape(ARTIFACT_PREFIX)}(\d+)$")


@dataclass(frozen=True)
class HarmClassifierArtifact:
    """Where a trained classifier was saved and what it was trained on."""

    version: int
    path: str
    labels: tuple[str, ...]
    n_examples: int
    n_new_examples: int
    training_sha256: str
    sklearn_version: str
    created_at: str
    thresholds: dict[str, float] = field(default_factory=dict)


class HarmClassifier:
    """A trained harm classifier, usable as a moderation provider.

    `threshold` applies to every category without an entry in `thresholds` (a category with too
    few validation examples to calibrate, or an artifact saved before calibration existed).

    Example:
        >>> clf = train_harm_classifier([])
        >>> clf.predict(["how do i reset my password", "i will stab my neighbor tonight"])
        ['safe', 'violence']
    """

    name = "harm-classifier"

    def __init__(
        self,
        pipeline: Pipeline,
        threshold: float = 0.5,
        version: int | None = None,
        training_data: Sequence[tuple[str, str]] = (),
        n_new_examples: int = 0,
        thresholds: Mapping[str, float] | None = None,
        calibration: Mapping[str, object] | None = None,
    ) -> None:
        for label, value in {"threshold": threshold, **(thresholds or {})}.items():
            if not 0.0 < value <= 1.0:
                raise ValueError(f"threshold for {label} must be in (0, 1], got {value}")
        self.pipeline = pipeline
        self.threshold = threshold
        self.thresholds = {str(k): float(v) for k, v in (thresholds or {}).items()}
        # How the thresholds were chosen (validation precision and recall), for the artifact.
        self.calibration = dict(calibration or {})
        self.version = version
        # What it was trained on, for the artifact's metadata (empty once loaded from disk).
        self.training_data = tuple(training_data)
        self.n_new_examples = n_new_examples
        self.labels: tuple[str, ...] = tuple(str(c) for c in pipeline.classes_)

    def threshold_for(self, category: str) -> float:
        return self.thresholds.get(category, self.threshold)

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The flagged category with the highest score per text, or "safe" when none is flagged."""
        return [
            max(r.categories, key=lambda c: r.scores[c]) if r.flagged else SAFE_LABEL
            for r in self.classify(texts)
        ]

    def classify(self, texts: Sequence[str]) -> list[ModerationResult]:
        if not texts:
            return []
        probabilities = self.pipeline.predict_proba(list(texts))
        harm_columns = [(i, label) for i, label in enumerate(self.labels) if label != SAFE_LABEL]
        results = []
        # A category is flagged on its own probability. Summing the harm categories against "safe"
        # flags unfamiliar text: an uninformed prediction spreads its mass over every class.
        for row in probabilities:
            scores = {label: round(float(row[i]), 6) for i, label in harm_columns}
            flagged = tuple(sorted(c for c, s in scores.items() if s >= self.threshold_for(c)))
            results.append(ModerationResult(self.name, bool(flagged), flagged, scores))
        return results


def _check_examples(examples: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    checked = []
    for index, example in enumerate(examples):
        if not (isinstance(example, tuple | list) and len(example) == 2):
            raise ValueError(f"example {index}: expected a (text, label) pair, got {example!r}")
        text, label = example
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"example {index}: text must be a non-empty string")
        if not isinstance(label, str) or not label.strip():
            raise ValueError(f"example {index}: label must be a non-empty category name (or {SAFE_LABEL!r})")
        checked.append((text, label.strip()))
    return checked


def _features() -> FeatureUnion:
    # Word uni- and bigrams learn intent phrases ("how do i ... without getting caught"); character
    # 3- to 5-grams within words carry what words miss: inflections and compounds ("stabbed",
    # "meth" in "methamphetamine"), misspellings, and words the seed never saw but whose parts it
    # did. 2-grams doubled the vectorising time and added nothing on held-out text.
    return FeatureUnion(
        [
            ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, min_df=2)),
        ]
    )


def _model(seed: int) -> LogisticRegression:
    # class_weight="balanced": "safe" outnumbers each harm category several times over, and reviewer
    # examples can skew the mix further; the calibrated thresholds then undo the optimism this
    # gives rare classes. C=3 and tol=1e-3 fit in half the iterations of C=10 and 1e-4 (the model
    # is fitted 1 + N_FOLDS times per training) with the same held-out detection.
    return LogisticRegression(C=3.0, tol=1e-3, max_iter=3000, class_weight="balanced", random_state=seed)


def train_harm_classifier(
    examples: Iterable[tuple[str, str]],
    *,
    include_seed: bool = True,
    new_example_weight: float = 3.0,
    threshold: float = 0.5,
    seed: int = 0,
    target_precision: float | None = DEFAULT_TARGET_PRECISION,
    max_false_positive_rate: float = DEFAULT_MAX_FALSE_POSITIVE_RATE,
) -> HarmClassifier:
    """Train on the seed set plus `examples` ((text, label) pairs; label "safe" or a category).

    With `target_precision`, per-category thresholds are calibrated first on a held-out split
    (see the module docstring); `threshold` is used for categories that cannot be calibrated, and
    for all of them when `target_precision` is None.
    """
    new = _check_examples(examples)
    if new_example_weight <= 0:
        raise ValueError(f"new_example_weight must be positive, got {new_example_weight}")
    if target_precision is not None and not 0.0 < target_precision <= 1.0:
        raise ValueError(f"target_precision must be in (0, 1], got {target_precision}")
    if not 0.0 <= max_false_positive_rate <= 1.0:
        raise ValueError(f"max_false_positive_rate must be in [0, 1], got {max_false_positive_rate}")
    base = seed_set(seed=seed) if include_seed else []
    data = [(e.text, e.label) for e in base] + new
    # Reviewer examples are sentences from real traffic: exactly what calibration should hold out.
    sentence = np.array([e.kind == "sentence" for e in base] + [True] * len(new), dtype=bool)
    labels = [label for _, label in data]
    if len(set(labels)) < 2:
        raise ValueError(f"need examples of at least two labels to train, got {sorted(set(labels))}")
    weights = np.array([1.0] * len(base) + [new_example_weight] * len(new))

    # One BLAS thread: on these small problems extra threads only contend for the CPU, and on a
    # busy host that made a fit dozens of times slower.
    with threadpool_limits(limits=1):
        features = _features()
        # The vocabulary and IDF come from all texts, held-out folds included: unsupervised, and it
        # saves vectorising once per fold. The labels of a held-out fold stay unseen.
        matrix = features.fit_transform([t for t, _ in data])
        model = _model(seed).fit(matrix, labels, sample_weight=weights)
        thresholds: dict[str, float] = {}
        calibration: dict[str, object] = {}
        if target_precision is not None:
            fold_of = folds([t for t, _ in data], sentence, seed)
            held_out = out_of_fold(
                lambda: _model(seed), matrix, np.asarray(labels), fold_of, weights, model.classes_
            )
            thresholds, per_category = calibrate_thresholds(
                held_out[sentence],
                [str(c) for c in model.classes_],
                np.asarray(labels)[sentence],
                target_precision,
                max_false_positive_rate,
            )
            calibration = {
                "target_precision": target_precision,
                "max_false_positive_rate": max_false_positive_rate,
                "folds": N_FOLDS,
                "categories": per_category,
            }
    pipeline = Pipeline([("features", features), ("model", model)])
    return HarmClassifier(
        pipeline,
        threshold=threshold,
        training_data=data,
        n_new_examples=len(new),
        thresholds=thresholds,
        calibration=calibration,
    )


def _training_sha256(data: Sequence[tuple[str, str]]) -> str:
    payload = json.dumps(sorted(data), ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(payload).hexdigest()


def _versions(artifacts_dir: Path) -> list[int]:
    if not artifacts_dir.is_dir():
        return []
    found = (_VERSION_DIR.match(p.name) for p in artifacts_dir.iterdir() if p.is_dir())
    return sorted(int(m.group(1)) for m in found if m)


def save_harm_classifier(classifier: HarmClassifier, artifacts_dir: Path) -> HarmClassifierArtifact:
    """Save as the next version under `artifacts_dir`; never overwrites an existing version."""
    data, n_new = classifier.training_data, classifier.n_new_examples
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    version = (_versions(artifacts_dir) or [0])[-1] + 1
    while True:
        target = artifacts_dir / f"{ARTIFACT_PREFIX}{version:04d}"
        try:
            target.mkdir()  # atomic: two concurrent retrains cannot claim the same version
            break
        except FileExistsError:
            version += 1
    joblib.dump(classifier.pipeline, target / "model.joblib")
    artifact = HarmClassifierArtifact(
        version=version,
        path=str(target),
        labels=classifier.labels,
        n_examples=len(data),
        n_new_examples=n_new,
        training_sha256=_training_sha256(data),
        sklearn_version=sklearn.__version__,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        thresholds=dict(classifier.thresholds),
    )
    meta = asdict(artifact) | {"threshold": classifier.threshold, "calibration": classifier.calibration}
    (target / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    classifier.version = version
    return artifact


def retrain(
    examples: Iterable[tuple[str, str]],
    artifacts_dir: Path,
    *,
    new_example_weight: float = 3.0,
    threshold: float = 0.5,
) -> HarmClassifierArtifact:
    """Train on the seed set plus reviewer `examples` and save the result as a new version."""
    classifier = train_harm_classifier(examples, new_example_weight=new_example_weight, threshold=threshold)
    return save_harm_classifier(classifier, Path(artifacts_dir))


def latest_artifact(artifacts_dir: Path) -> Path | None:
    """The newest version directory under `artifacts_dir`, or None when nothing was saved yet."""
    versions = _versions(Path(artifacts_dir))
    return Path(artifacts_dir) / f"{ARTIFACT_PREFIX}{versions[-1]:04d}" if versions else None


def load_harm_classifier(path: Path) -> HarmClassifier:
    """Load a version directory written by `save_harm_classifier`, or the newest version under an
    artifacts directory (the one `retrain` writes into). Artifacts saved before thresholds were
    calibrated load with their single `threshold`."""
    path = Path(path)
    if not (path / "meta.json").exists() and latest_artifact(path) is not None:
        path = latest_artifact(path)
    meta_file, model_file = path / "meta.json", path / "model.joblib"
    if not (meta_file.is_file() and model_file.is_file()):
        raise FileNotFoundError(
            f"{path} is not a harm classifier artifact (needs meta.json and model.joblib)"
        )
    meta = json.loads(meta_file.read_text())
    pipeline = joblib.load(model_file)
    return HarmClassifier(
        pipeline,
        threshold=float(meta.get("threshold", 0.5)),
        version=int(meta["version"]),
        thresholds=meta.get("thresholds") or None,
        calibration=meta.get("calibration") or None,
    )
