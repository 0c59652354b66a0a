"""`arbiter train reward`, `arbiter eval reward`, `arbiter models list | activate`.

Training shows the Trainer's progress bar on stderr and checkpoints as it goes; running the same
command again after a crash resumes from the last checkpoint (the run directory is derived from
the snapshot and the recipe). With ``--json`` the last stdout line is one JSON object.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import typer

from app.cli.common import SHIPPED_RECIPES, JsonOpt, cli_context, emit, fail, handle_errors, resolve_recipe
from app.db import session_scope
from app.errors import InvalidInput
from app.models import RewardModelVersion
from app.services.models import reward

DEFAULT_RECIPE = SHIPPED_RECIPES / "reward_minilm.yaml"


def _public(row: RewardModelVersion) -> dict:
    return row.model_dump(mode="json")


def _stderr_only(fn):
    # The Trainer prints its log lines to stdout; with --json stdout must end with our one object.
    with contextlib.redirect_stdout(sys.stderr):
        return fn()


@handle_errors
def train_reward(
    snapshot: str | None = typer.Option(None, "--snapshot", help="Train on this DatasetSnapshot id."),
    data: Path | None = typer.Option(None, "--data", help="Train on a pair file (prompt | conversational | hh JSONL)."),
    from_labels: bool = typer.Option(False, "--from-labels", help="Snapshot the store's labels now and train on that."),
    recipe: Path = typer.Option(DEFAULT_RECIPE, "--recipe", help="Recipe YAML file, or a shipped recipe's name (reward_minilm, reward_hh, ...)."),
    overrides: list[str] = typer.Option([], "--set", help="Recipe override key=value (repeatable)."),
    min_confidence: float = typer.Option(0.0, "--min-confidence", help="Snapshot rule: drop labels below this."),
    sources: str = typer.Option("human,reviewer,llm_judge,local_model", "--sources", help="Snapshot rule: label sources."),
    ties: str = typer.Option("drop", "--ties", help="Snapshot rule: drop | margin_zero."),
    validation_fraction: float = typer.Option(0.1, "--validation-fraction", help="Snapshot rule: held out for calibration."),
    as_json: bool = JsonOpt,
) -> None:
    """Train a reward model on a snapshot, calibrate it and register it."""
    from reward_models import SnapshotRules
    from reward_models.recipes import parse_overrides

    if sum([snapshot is not None, data is not None, from_labels]) != 1:
        fail("give exactly one of --snapshot ID, --data FILE or --from-labels", code=2, as_json=as_json)
    recipe = resolve_recipe(recipe)
    try:
        rules = SnapshotRules(tuple(s.strip() for s in sources.split(",") if s.strip()), min_confidence, ties, validation_fraction)
        parsed_overrides = parse_overrides(overrides)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="bad_snapshot_rules") from None
    settings, engine = cli_context()
    logging.getLogger("reward_models").setLevel(logging.INFO)
    if from_labels:
        with session_scope(engine) as session:
            snapshot = reward.snapshot_from_labels(session, settings, rules, actor="cli").id
    row, manifest = reward.train_reward(
        settings, engine, snapshot_id=snapshot, data=data, recipe=recipe, overrides=parsed_overrides,
        actor="cli", rules=rules, wrap_training=_stderr_only,
    )
    validation = {k.removeprefix("validation_"): v for k, v in manifest.metrics.items() if k.startswith("validation_")}
    out = {
        "model_id": row.id,
        "name": row.name,
        "snapshot_id": row.snapshot_id,
        "snapshot_hash": row.snapshot_hash,
        "artifact_path": row.artifact_path,
        "temperature": manifest.temperature,
        "calibration": manifest.calibration,
        "validation": validation,
        "train_seconds": manifest.metrics.get("train_wall_seconds"),
    }
    acc = validation.get("accuracy")
    emit(out, as_json, f"registered {row.id} ({row.name}); validation accuracy "
                       f"{acc if acc is None else round(acc, 4)}, temperature {manifest.temperature:.3f}")


@handle_errors
def eval_reward(
    model: list[str] = typer.Option(..., "--model", help="A registered reward model id, or an artifact/model directory. "
                                    "Repeat it to evaluate an ensemble (the mean of the models' calibrated rewards)."),
    data: Path = typer.Option(..., "--data", help="Pair file (prompt | conversational | hh JSONL)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N pairs."),
    as_json: bool = JsonOpt,
) -> None:
    """Accuracy, ECE, length correlation and the longer-response baseline on held-out pairs."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        out = reward.evaluate_reward(session, model, data, limit)
    members = "".join(f"\n  member {m['model_id'] or m['model_path']}: accuracy={m['accuracy']:.4f}" for m in out.get("members", []))
    emit(out, as_json, f"n={out['n']} accuracy={out['accuracy']:.4f} ece={out['ece']:.4f} "
                       f"longer-response baseline={out['longer_response_accuracy']:.4f} "
                       f"length correlation={out['length_correlation']:.3f}{members}")


@handle_errors
def models_list(
    status: str | None = typer.Option(None, help="registered | active | retired"),
    as_json: bool = JsonOpt,
) -> None:
    """Registered reward models, newest first."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        rows = [_public(r) for r in reward.list_reward_models(session, status)]
    text = "\n".join(
        f"{r['id']}  {r['status']:<10} {r['name']:<40} acc={r['metrics'].get('validation_accuracy')}" for r in rows
    ) or "no reward models"
    emit({"models": rows, "count": len(rows)}, as_json, text)


@handle_errors
def models_activate(model_id: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """Make a reward model the active one (used by the local judge and RL); audited."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        row = _public(reward.activate_reward_model(session, model_id, actor="cli"))
    emit(row, as_json, f"{row['id']} is now active")


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    groups["train"].command("reward")(train_reward)
    groups["eval"].command("reward")(eval_reward)
    groups["models"].command("list")(models_list)
    groups["models"].command("activate")(models_activate)
