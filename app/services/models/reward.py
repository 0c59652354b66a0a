"""Reward models in the store: snapshots of labels, training runs, the registry, evaluation.

The domain work (snapshot rules, TRL training, calibration, scoring) lives in ``reward_models``;
this module moves data between it and the store:

- ``snapshot_from_labels`` / ``snapshot_from_file``: labels in the store (or a pair file) ->
  ``reward_models.build_snapshot`` -> files under ``<artifacts>/snapshots/<hash>`` + a
  ``DatasetSnapshot`` row (one per content hash) + an audit entry. From the store, judges measured at chance
  (``ARBITER_SNAPSHOT_MIN_JUDGE_*``: kappa with humans, position consistency) make no training pairs; the
  rule and the judges it excluded, with why, are recorded in the snapshot.
- ``train_reward``: runs a recipe on a snapshot into ``<artifacts>/reward_models/<run>``, where the
  run name is derived from the snapshot and the recipe: re-running a crashed command resumes from
  its last checkpoint, re-running a finished one registers nothing new.
- ``register_reward_model``: a ``RewardModelVersion`` row + audit entry, idempotent per artifact.
- ``evaluate_reward`` / ``list_reward_models`` / ``activate_reward_model``.

Training holds no database transaction: a session is opened only to read the snapshot row and,
at the end, to register the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.audit import append_audit
from app.db import session_scope
from app.errors import InvalidInput, NotFound
from app.models import Candidate, Comparison, DatasetSnapshot, Label, RewardModelVersion, Task
from app.services.models.rows import get_row, newest_first
from app.settings import Settings
from reward_models import (
    LabeledPair,
    Snapshot,
    SnapshotRules,
    build_snapshot,
    labeled_pairs_from_preferences,
    read_pairs,
    read_snapshot,
    write_snapshot,
)
from reward_models.pairs import Message, PairParseError, PreferencePair
from reward_models.snapshot import JudgeMeasurement, judges_to_exclude

__all__ = [
    "activate_reward_model",
    "evaluate_reward",
    "get_reward_model",
    "list_reward_models",
    "register_reward_model",
    "register_snapshot",
    "snapshot_from_file",
    "snapshot_from_labels",
    "train_reward",
]


JUDGE_SOURCES = ("llm_judge", "local_model")


def _snapshots_dir(settings: Settings) -> Path:
    return settings.artifacts_dir / "snapshots"


def _reward_models_dir(settings: Settings) -> Path:
    return settings.artifacts_dir / "reward_models"


def _prompt_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The task's prompt rendered as reward models read prompts (same as ``PreferencePair.prompt_text``)."""
    pair = PreferencePair(tuple(Message(m.get("role", "user"), m.get("content", "")) for m in messages), "-", "-")
    return pair.prompt_text()


def labels_from_store(session: Session) -> list[LabeledPair]:
    """Every label on a prompt comparison, as the plain objects ``build_snapshot`` takes."""
    rows = session.exec(
        select(Label, Comparison, Task)
        .join(Comparison, col(Label.comparison_id) == col(Comparison.id))
        .join(Task, col(Comparison.task_id) == col(Task.id))
    ).all()
    candidate_ids = {c.candidate_a_id for _, c, _ in rows} | {c.candidate_b_id for _, c, _ in rows}
    contents = {
        c.id: c.content
        for c in session.exec(select(Candidate).where(col(Candidate.id).in_(candidate_ids))).all()
    } if candidate_ids else {}
    out = []
    for label, comparison, task in rows:
        out.append(
            LabeledPair(
                comparison_id=comparison.id,
                prompt=_prompt_text(task.prompt or []),
                response_a=contents[comparison.candidate_a_id],
                response_b=contents[comparison.candidate_b_id],
                choice=label.choice,
                confidence=min(max(float(label.confidence), 0.0), 1.0),
                source=label.source,
                judge=(label.judge or label.producer) if label.source in JUDGE_SOURCES else None,
            )
        )
    return out


def register_snapshot(session: Session, settings: Settings, snapshot: Snapshot, actor: str, origin: str) -> DatasetSnapshot:
    """Write the snapshot's files and record it; the same content is recorded once."""
    existing = session.exec(select(DatasetSnapshot).where(DatasetSnapshot.content_hash == snapshot.content_hash)).first()
    if existing is not None:
        return existing
    directory = write_snapshot(snapshot, _snapshots_dir(settings) / snapshot.content_hash[:16])
    row = DatasetSnapshot(
        content_hash=snapshot.content_hash,
        rules=snapshot.manifest()["rules"],
        n_pairs=snapshot.n_pairs,
        n_train=len(snapshot.train),
        n_validation=len(snapshot.validation),
        path=str(directory),
    )
    session.add(row)
    session.flush()
    append_audit(session, actor, "snapshot.created", "dataset_snapshot", row.id,
                 {"content_hash": snapshot.content_hash, "origin": origin, **snapshot.manifest()})
    return row


def judge_measurements(session: Session) -> list[JudgeMeasurement]:
    """Every judge's position consistency (its labels' ``consistent`` flags) and kappa with the human majority."""
    from app.services.labels.agreement import compute_agreement

    flags: dict[str, list[bool]] = {}
    for judge, producer, details in session.exec(
            select(Label.judge, Label.producer, Label.details).where(col(Label.source).in_(JUDGE_SOURCES))):
        flag = (details or {}).get("consistent")
        if isinstance(flag, bool):
            flags.setdefault(judge or producer, []).append(flag)
    kappas = {j.judge: (j.n, j.kappa) for j in compute_agreement(session).judges}
    return [JudgeMeasurement(judge, len(flags.get(judge, [])),
                             sum(flags[judge]) / len(flags[judge]) if flags.get(judge) else None,
                             *kappas.get(judge, (0, None)))
            for judge in sorted(set(flags) | set(kappas))]


def trust_rules(settings: Settings, rules: SnapshotRules) -> SnapshotRules:
    """``rules`` with the configured judge-trust thresholds, unless they already carry their own."""
    if rules.min_judge_kappa is not None or rules.min_judge_consistency is not None:
        return rules
    return dataclasses.replace(rules, min_judge_kappa=settings.snapshot_min_judge_kappa,
                               min_judge_consistency=settings.snapshot_min_judge_consistency,
                               min_judge_labels=settings.snapshot_min_judge_labels)


def snapshot_from_labels(session: Session, settings: Settings, rules: SnapshotRules, actor: str) -> DatasetSnapshot:
    labels = labels_from_store(session)
    if not labels:
        raise InvalidInput("there are no labels in the store to build a snapshot from", code="no_labels")
    rules = trust_rules(settings, rules)
    excluded = judges_to_exclude(judge_measurements(session), rules)
    rules = dataclasses.replace(rules, exclude_judges=tuple(excluded))
    return register_snapshot(session, settings, build_snapshot(labels, rules, judge_exclusions=excluded), actor, "labels")


def read_pair_file(path: Path) -> list[PreferencePair]:
    """The pairs of a pair file (any of the three formats), with a missing or malformed file as a typed error."""
    if not path.exists():
        raise NotFound(f"data file {path} does not exist", code="data_not_found")
    try:
        return read_pairs(path)
    except PairParseError as exc:
        raise InvalidInput(f"{path}: {exc}", code="bad_pair_file") from None


def snapshot_from_file(session: Session, settings: Settings, path: str | Path, rules: SnapshotRules, actor: str) -> DatasetSnapshot:
    """A snapshot of a pair file (any of the three formats); every pair counts as a human label."""
    path = Path(path)
    pairs = read_pair_file(path)
    if not pairs:
        raise InvalidInput(f"{path} holds no preference pairs", code="bad_pair_file")
    return register_snapshot(session, settings, build_snapshot(labeled_pairs_from_preferences(pairs), rules), actor, f"file:{path.name}")


def _load_snapshot(row: DatasetSnapshot) -> Snapshot:
    try:
        return read_snapshot(row.path)
    except (FileNotFoundError, ValueError) as exc:
        raise InvalidInput(f"snapshot {row.id} cannot be used: {exc}", code="snapshot_unreadable") from None


def _run_name(recipe_values: Mapping[str, Any], snapshot_hash: str) -> str:
    digest = hashlib.sha256(json.dumps(recipe_values, sort_keys=True, default=str).encode()).hexdigest()
    return f"rm-{snapshot_hash[:12]}-{digest[:8]}"


def register_reward_model(
    session: Session, manifest, artifact_path: str | Path, snapshot_id: str | None, actor: str
) -> RewardModelVersion:
    """Record a trained artifact in the registry (once per artifact path) with an audit entry."""
    artifact_path = str(Path(artifact_path).resolve())
    existing = session.exec(select(RewardModelVersion).where(RewardModelVersion.artifact_path == artifact_path)).first()
    if existing is not None:
        return existing
    row = RewardModelVersion(
        name=manifest.name,
        base_model=manifest.base_model,
        snapshot_id=snapshot_id,
        snapshot_hash=manifest.snapshot_hash,
        hyperparams=manifest.hyperparameters,
        metrics={**manifest.metrics, "calibration": manifest.calibration, "temperature": manifest.temperature},
        artifact_path=artifact_path,
    )
    session.add(row)
    session.flush()
    append_audit(session, actor, "reward_model.registered", "reward_model", row.id,
                 {"name": row.name, "base_model": row.base_model, "snapshot_hash": row.snapshot_hash,
                  "artifact_path": artifact_path, "validation_accuracy": manifest.metrics.get("validation_accuracy")})
    return row


def train_reward(
    settings: Settings,
    engine: Engine,
    *,
    snapshot_id: str | None = None,
    data: str | Path | None = None,
    recipe: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    actor: str = "cli",
    rules: SnapshotRules | None = None,
    wrap_training: Callable[[Callable[[], Any]], Any] | None = None,
) -> tuple[RewardModelVersion, Any]:
    """Train a recipe on a snapshot (an existing one, or one made from ``data``) and register it.

    Returns the registry row and the artifact manifest. ``wrap_training`` lets the CLI run the
    training call inside e.g. a stdout redirect.
    """
    from reward_models.recipes import load_recipe
    from reward_models.training import run_hyperparameters, train_reward_model

    if (snapshot_id is None) == (data is None):
        raise InvalidInput("give exactly one of a snapshot id or a data file", code="bad_request")
    with session_scope(engine) as session:
        if snapshot_id is not None:
            row = session.get(DatasetSnapshot, snapshot_id)
            if row is None:
                raise NotFound(f"snapshot {snapshot_id} not found", code="snapshot_not_found")
        else:
            row = snapshot_from_file(session, settings, data, rules or SnapshotRules(), actor)
        snapshot_row_id = row.id
        snapshot = _load_snapshot(row)

    try:
        parsed = load_recipe(recipe, overrides)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise InvalidInput(f"bad recipe: {exc}", code="bad_recipe") from None
    hyperparameters = run_hyperparameters(parsed.model, parsed.data, parsed.training)
    out = _reward_models_dir(settings) / _run_name(hyperparameters, snapshot.content_hash)
    parsed.training.output_dir = str(out)

    def run():
        return train_reward_model(snapshot, parsed.model, parsed.data, parsed.training, models_dir=settings.models_dir)

    try:
        result = wrap_training(run) if wrap_training else run()
    except FileNotFoundError as exc:
        raise InvalidInput(str(exc), code="model_not_found") from None
    with session_scope(engine) as session:
        version = register_reward_model(session, result.manifest, result.artifact_dir, snapshot_row_id, actor)
        session.expunge(version)
    return version, result.manifest


def get_reward_model(session: Session, model_id: str) -> RewardModelVersion:
    return get_row(session, RewardModelVersion, model_id, "reward model", "reward_model_not_found")


def list_reward_models(session: Session, status: str | None = None) -> list[RewardModelVersion]:
    return newest_first(session, RewardModelVersion, status=status)


def activate_reward_model(session: Session, model_id: str, actor: str) -> RewardModelVersion:
    """Make one reward model the active one (the others that were active become registered)."""
    row = get_reward_model(session, model_id)
    previous = [r for r in list_reward_models(session, "active") if r.id != row.id]
    for other in previous:
        other.status = "registered"
        session.add(other)
    row.status = "active"
    session.add(row)
    append_audit(session, actor, "reward_model.activated", "reward_model", row.id,
                 {"name": row.name, "previous": [r.id for r in previous]})
    return row


def evaluate_reward(session: Session, model: str | Sequence[str], data: str | Path, limit: int | None = None) -> dict[str, Any]:
    """Evaluate a registered model (by id) or an artifact/model directory on a pair file.

    Several models are evaluated as one ensemble (``reward_models.EnsembleScorer``: the mean of their
    calibrated rewards); the report then also holds each member's own figures and the ensemble's mean
    disagreement (standard deviation of the members' rewards), so the gain over a single model is
    measured in the same run.
    """
    from reward_models import EnsembleScorer, evaluate_ensemble, evaluate_pairs, load_scorer

    models = [model] if isinstance(model, str) else list(model)
    if not models:
        raise InvalidInput("name at least one reward model", code="reward_model_not_found")
    resolved = []
    for name in models:
        row = session.get(RewardModelVersion, name)
        path = Path(row.artifact_path) if row is not None else Path(name)
        if not path.exists():
            raise NotFound(f"{name} is neither a registered reward model id nor a model directory", code="reward_model_not_found")
        resolved.append((row.id if row is not None else None, path))
    data = Path(data)
    pairs = read_pair_file(data)
    if limit:
        pairs = pairs[:limit]
    if not pairs:
        raise InvalidInput(f"{data} holds no preference pairs", code="bad_pair_file")
    try:
        scorer = load_scorer(resolved[0][1] if len(resolved) == 1 else [path for _, path in resolved])
    except (FileNotFoundError, OSError, ValueError) as exc:
        raise InvalidInput(f"cannot load reward model {', '.join(models)}: {exc}", code="reward_model_unreadable") from None
    if not isinstance(scorer, EnsembleScorer):
        model_id, path = resolved[0]
        return {"model_id": model_id, "model_path": str(path), "data": str(data), **evaluate_pairs(scorer, pairs).to_dict()}
    evaluation = evaluate_ensemble(scorer, pairs)
    members = [{"model_id": model_id, "model_path": str(path), **report.to_dict()}
               for (model_id, path), report in zip(resolved, evaluation.members)]
    return {"model_id": None, "model_path": None, "ensemble": len(members), "data": str(data),
            **evaluation.ensemble.to_dict(), "mean_member_disagreement": evaluation.mean_disagreement, "members": members}
