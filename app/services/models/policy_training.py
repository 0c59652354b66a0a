"""Policy training jobs: recipe + data from the store or a file -> TRL run -> a candidate PolicyVersion.

``train_dpo_job`` builds preference pairs from one source:
- ``data``: a pair file (prompt | conversational | hh JSONL, ``reward_models.read_pairs``);
- ``snapshot_id``: a DatasetSnapshot of labels (its training records; ties are skipped);
- ``from_outcomes``: logged decisions of a finite-action decision type with rewards
  (``policies.preference_data.pairs_from_outcomes``; the recipe's ``data.good`` / ``data.assume_single_correct``).

``train_rl_job`` trains GRPO or RLOO on prompts (from a pair file, a snapshot, or logged decision contexts) against
a registered reward model's scorer (the active one by default), with the recipe's KL penalty ``beta``.

The run directory ``<artifacts>/policies/<method>-<type>-<hash of data and recipe>`` makes a re-run after a crash
resume from its last checkpoint, and a re-run of a finished job register nothing new. Registration writes a
``candidate`` PolicyVersion with lineage (base model, reward model, snapshot) and a ``policy.registered`` audit
entry, once per artifact.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app.audit import append_audit
from app.db import session_scope
from app.errors import InvalidInput, NotFound
from app.models import DatasetSnapshot, Decision, PolicyVersion, RewardModelVersion
from app.services.models.policies import logged_decisions
from app.services.serving.policy_runtime import BASE_MODEL
from app.settings import Settings
from policies.decision_types import DecisionType, deployment_decision_types
from policies.preference_data import (
    DPOExample,
    LoggedOutcome,
    examples_from_preference_pairs,
    pairs_from_outcomes,
)
from policies.recipes import Recipe, RecipeError, load_recipe
from policies.training import Lineage, TrainingResult

__all__ = ["train_dpo_job", "train_rl_job"]

Wrap = Callable[[Callable[[], Any]], Any]


def _recipe_and_type(recipe_path: str | Path, settings: Settings) -> tuple[Recipe, DecisionType]:
    try:
        recipe = load_recipe(recipe_path)
    except RecipeError as exc:
        raise InvalidInput(f"bad recipe: {exc}", code="bad_recipe") from None
    types = deployment_decision_types(settings.decision_types_dir)
    if recipe.decision_type not in types:
        raise InvalidInput(f"recipe names unknown decision type {recipe.decision_type!r}; known: {sorted(types)}",
                           code="bad_recipe")
    return recipe, types[recipe.decision_type]


def _base_model(recipe: Recipe, settings: Settings) -> tuple[Path, str]:
    """(checkpoint directory, the name recorded on the PolicyVersion)."""
    if recipe.base_model in ("smollm2", BASE_MODEL):
        from reward_models.local_models import smollm2_dir

        return smollm2_dir(settings.models_dir), BASE_MODEL
    path = Path(recipe.base_model)
    if not path.is_dir():
        raise InvalidInput(f"base model {recipe.base_model!r} is not a checkpoint directory", code="model_not_found")
    return path, str(path.resolve())


def _renderer(base_dir: Path) -> Callable[[list[dict[str, str]]], str]:
    from transformers import AutoTokenizer

    from policies.backends.local import render_with_tokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    return lambda messages: render_with_tokenizer(tokenizer, messages)


def _snapshot(session: Session, snapshot_id: str):
    from reward_models import read_snapshot

    row = session.get(DatasetSnapshot, snapshot_id)
    if row is None:
        raise NotFound(f"snapshot {snapshot_id} not found", code="snapshot_not_found")
    return row, read_snapshot(row.path)


def _read_pair_file(data: str | Path):
    from reward_models import read_pairs
    from reward_models.pairs import PairParseError

    if not Path(data).exists():
        raise NotFound(f"data file {data} does not exist", code="data_not_found")
    try:
        return read_pairs(data)
    except PairParseError as exc:
        raise InvalidInput(f"{data}: {exc}", code="bad_pair_file") from None


def _one_source(**sources: Any) -> str:
    given = [name for name, value in sources.items() if value]
    if len(given) != 1:
        raise InvalidInput(f"give exactly one data source: {', '.join(sources)}", code="bad_request")
    return given[0]


def _run_dir(settings: Settings, method: str, decision_type: str, rows: Sequence[Any], recipe: Recipe) -> Path:
    digest = hashlib.sha256(json.dumps([list(rows), recipe.training, recipe.data, str(recipe.lora), recipe.base_model],
                                       sort_keys=True, default=str).encode()).hexdigest()
    return settings.artifacts_dir / "policies" / f"{method}-{decision_type}-{digest[:12]}"


def _register(engine: Engine, result: TrainingResult, recipe: Recipe, base_name: str, actor: str,
              snapshot_id: str | None, reward_model_id: str | None) -> PolicyVersion:
    artifact = str(Path(result.output_dir).resolve())
    with session_scope(engine) as session:
        existing = session.exec(select(PolicyVersion).where(PolicyVersion.artifact_path == artifact)).first()
        if existing is not None:
            return existing
        lineage = result.manifest["lineage"]
        row = PolicyVersion(
            name=f"{recipe.method}-{recipe.decision_type}-{Path(artifact).name.rsplit('-', 1)[-1]}",
            decision_type=recipe.decision_type, backend="transformers", base_model=base_name, artifact_path=artifact,
            reward_model_id=reward_model_id, snapshot_id=snapshot_id, state="candidate", created_by=actor,
            hyperparams={"method": recipe.method, "recipe": recipe.source, "training": recipe.training,
                         "lora": result.manifest.get("lora"), "data": recipe.data},
            metrics={**result.metrics, "lineage": lineage},
        )
        session.add(row)
        session.flush()
        append_audit(session, actor, "policy.registered", "policy", row.id,
                     {"decision_type": row.decision_type, "method": recipe.method, "state": "candidate",
                      "artifact_path": artifact, "lineage": lineage})
        session.expunge(row)
        return row


def _dpo_examples(engine: Engine, dt: DecisionType, recipe: Recipe, render, *, data, snapshot_id, from_outcomes, examples):
    """(examples, snapshot row id, snapshot hash) from the one source given."""
    source = _one_source(data=data, snapshot_id=snapshot_id, from_outcomes=from_outcomes, examples=examples)
    if source == "examples":
        return list(examples), None, None
    if source == "data":
        return examples_from_preference_pairs(_read_pair_file(data), render), None, None
    if source == "snapshot_id":
        with Session(engine) as session:
            row, snapshot = _snapshot(session, snapshot_id)
        examples = [DPOExample(render([{"role": "user", "content": r.prompt}]), r.chosen, r.rejected)
                    for r in snapshot.train if not r.tie and r.chosen != r.rejected]
        return examples, row.id, snapshot.content_hash
    if dt.kind != "action":
        raise InvalidInput("--from-outcomes needs a finite-action decision type", code="bad_request")
    with Session(engine) as session:
        rows = logged_decisions(session, dt.name, None)
    logged = [LoggedOutcome(d.request_hash or d.id, d.context, d.action, r) for d, r in rows]
    examples = pairs_from_outcomes(logged, lambda c: render(dt.messages(c, validate=False)), dt.action_ids,
                                   good=float(recipe.data.get("good", 0.5)),
                                   assume_single_correct=bool(recipe.data.get("assume_single_correct", False)))
    return examples, None, None


def train_dpo_job(settings: Settings, engine: Engine, *, recipe_path: str | Path, data: str | Path | None = None,
                  snapshot_id: str | None = None, from_outcomes: bool = False,
                  examples: Sequence[DPOExample] | None = None, reward_model_id: str | None = None,
                  lineage_snapshot: tuple[str, str] | None = None, max_steps: int | None = None,
                  actor: str = "cli", wrap_training: Wrap | None = None) -> tuple[PolicyVersion, TrainingResult]:
    """Train a DPO policy from one data source and register it as a candidate.

    ``examples`` are pairs a caller built already (prompts rendered with the base model's chat format), e.g.
    actions ranked by a reward model with the base policy's log-likelihoods as reference log-probabilities; the
    caller then names that ``reward_model_id`` and the ``lineage_snapshot`` (row id, content hash) it was
    trained on, which are recorded as the policy's lineage.
    """
    from policies.dpo import train_dpo

    recipe, dt = _recipe_and_type(recipe_path, settings)
    base_dir, base_name = _base_model(recipe, settings)
    examples, snap_id, snap_hash = _dpo_examples(engine, dt, recipe, _renderer(base_dir), data=data,
                                                 snapshot_id=snapshot_id, from_outcomes=from_outcomes, examples=examples)
    if lineage_snapshot is not None:
        snap_id, snap_hash = lineage_snapshot
    examples = examples[: int(recipe.data.get("max_pairs", len(examples)))]
    if not examples:
        raise InvalidInput("the data source gave no usable preference pairs", code="no_pairs")
    out = _run_dir(settings, "dpo", dt.name, [e.as_row() for e in examples], recipe)
    lineage = Lineage(base_model=str(base_dir), decision_type=dt.name, snapshot_hash=snap_hash, reward_model_id=reward_model_id)
    config = recipe.trainer_config(**({"max_steps": max_steps} if max_steps else {}))

    def run():
        return train_dpo(examples, base_model=base_dir, output_dir=out, lineage=lineage, config=config, lora=recipe.lora)

    result = wrap_training(run) if wrap_training else run()
    return _register(engine, result, recipe, base_name, actor, snap_id, reward_model_id), result


def _rl_prompts(engine: Engine, dt: DecisionType, *, data, snapshot_id, from_decisions) -> tuple[list, str | None, str | None]:
    """(list of (messages, plain prompt text), snapshot row id, snapshot hash)."""
    source = _one_source(data=data, snapshot_id=snapshot_id, from_decisions=from_decisions)
    if source == "data":
        pairs = _read_pair_file(data)
        return [([m.to_dict() for m in p.prompt], p.prompt_text()) for p in pairs], None, None
    if source == "snapshot_id":
        with Session(engine) as session:
            row, snapshot = _snapshot(session, snapshot_id)
        return [([{"role": "user", "content": r.prompt}], r.prompt) for r in snapshot.train], row.id, snapshot.content_hash
    with Session(engine) as session:
        contexts = session.exec(select(Decision.context).where(Decision.decision_type == dt.name)).all()
    prompts = []
    for context in contexts:
        messages = dt.messages(context, validate=False)
        prompts.append((messages, messages[-1]["content"]))
    return prompts, None, None


def train_rl_job(settings: Settings, engine: Engine, *, recipe_path: str | Path, reward_model_id: str | None = None,
                 data: str | Path | None = None, snapshot_id: str | None = None, from_decisions: bool = False,
                 max_steps: int | None = None, actor: str = "cli",
                 wrap_training: Wrap | None = None) -> tuple[PolicyVersion, TrainingResult]:
    from policies.online_rl import train_online_rl
    from reward_models import load_scorer

    recipe, dt = _recipe_and_type(recipe_path, settings)
    if recipe.method not in ("grpo", "rloo"):
        raise InvalidInput(f"recipe method {recipe.method!r} is not online RL (grpo | rloo)", code="bad_recipe")
    with Session(engine) as session:
        query = select(RewardModelVersion)
        rm = (session.get(RewardModelVersion, reward_model_id) if reward_model_id
              else session.exec(query.where(RewardModelVersion.status == "active")).first())
    if rm is None:
        raise NotFound("no reward model: pass --reward-model ID or activate one", code="reward_model_not_found")
    base_dir, base_name = _base_model(recipe, settings)
    render = _renderer(base_dir)
    prompts, snap_id, snap_hash = _rl_prompts(engine, dt, data=data, snapshot_id=snapshot_id, from_decisions=from_decisions)
    # The reward model was trained on plain prompt text; the policy sees its chat-rendered prompt.
    plain = {render(messages): text for messages, text in prompts}
    rendered = list(plain)[: int(recipe.data.get("max_prompts", len(plain)))]
    if not rendered:
        raise InvalidInput("the data source gave no prompts", code="no_prompts")
    scorer = load_scorer(rm.artifact_path)

    def reward(batch_prompts: list[str], responses: list[str]):
        return scorer.score([plain.get(p, p) for p in batch_prompts], responses)

    out = _run_dir(settings, recipe.method, dt.name, rendered + [rm.id], recipe)
    lineage = Lineage(base_model=str(base_dir), decision_type=dt.name, reward_model_id=rm.id,
                      snapshot_hash=snap_hash or rm.snapshot_hash)
    config = recipe.trainer_config(**({"max_steps": max_steps} if max_steps else {}))

    def run():
        return train_online_rl(rendered, reward, algorithm=recipe.method, base_model=base_dir, output_dir=out,
                               lineage=lineage, config=config, lora=recipe.lora)

    result = wrap_training(run) if wrap_training else run()
    return _register(engine, result, recipe, base_name, actor, snap_id, rm.id), result
