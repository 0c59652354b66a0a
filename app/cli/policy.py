"""`arbiter policy list|shadow|approve|approvals|canary|promote|rollback|check-canary`, `arbiter train dpo|rl`,
`arbiter ope`.

State changes are admin operations run from the CLI: every one is validated (``policies.rollout``) and written
to the audit log with ``cli`` as the actor. Leaving shadow (canary, active) needs an approval (``approve``,
recorded as ``cli`` or ``cli:<--actor>``; ``ARBITER_POLICY_APPROVALS_REQUIRED`` distinct approvers). ``promote`` runs the off-policy evaluation gate first (finite-action
policies); ``--force`` overrides a failed gate and the override is recorded.

Training shows the Trainer's progress bar on stderr and checkpoints as it goes; running the same command again
after a crash resumes from the last checkpoint. With ``--json`` the last stdout line is one JSON object.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path

import typer

from app.cli.common import (
    SHIPPED_RECIPES,
    JsonOpt,
    cli_context,
    emit,
    handle_errors,
    lazy_module,
    resolve_recipe,
)
from app.db import session_scope
from app.models import PolicyVersion

svc = lazy_module("app.services.models.policies")  # loads torch: imported when a command runs, not for --help
approvals_svc = lazy_module("app.services.models.approvals")

RECIPES = SHIPPED_RECIPES


def _public(row: PolicyVersion) -> dict:
    return row.model_dump(mode="json")


def _stderr_only(fn):
    # The Trainer prints its log lines to stdout; with --json stdout must end with our one object.
    with contextlib.redirect_stdout(sys.stderr):
        return fn()


def _changed(rows: list[PolicyVersion]) -> dict:
    return {"changed": [{"id": r.id, "name": r.name, "state": r.state, "traffic_share": r.traffic_share} for r in rows]}


def _changed_text(out: dict) -> str:
    return "\n".join(f"{c['id']} ({c['name']}) -> {c['state']} (traffic {c['traffic_share']:.0%})" for c in out["changed"])


@handle_errors
def policy_list(decision_type: str | None = typer.Option(None, "--decision-type"), as_json: bool = JsonOpt) -> None:
    """Policy versions, newest first, with their state and traffic share."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        rows = [_public(r) for r in svc.list_policies(session, decision_type)]
    text = "\n".join(f"{r['id']}  {r['state']:<9} {r['traffic_share']:>5.0%}  {r['decision_type']:<16} {r['name']}"
                     for r in rows) or "no policies"
    emit({"policies": rows, "count": len(rows)}, as_json, text)


@handle_errors
def policy_shadow(policy_id: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """Run a policy in shadow: it decides on every request, logged, never served."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        out = _changed(svc.change_state(session, policy_id, "shadow", actor="cli"))
    emit(out, as_json, lambda: _changed_text(out))


@handle_errors
def policy_canary(policy_id: str = typer.Argument(...),
                  percent: float = typer.Option(..., "--percent", min=0.0, max=100.0, help="Share of units served."),
                  as_json: bool = JsonOpt) -> None:
    """Serve a policy to PERCENT % of units (sticky by unit id); again with a new percent to widen it.

    Needs the policy's approvals first (`arbiter policy approve`)."""
    settings, engine = cli_context()
    with session_scope(engine) as session:
        out = _changed(svc.change_state(session, policy_id, "canary", actor="cli", percent=percent,
                                        approvals=approvals_svc.ApprovalRules.from_settings(settings)))
    emit(out, as_json, lambda: _changed_text(out))


def _approval_text(out: dict) -> str:
    head = "approved" if out["approved"] else f"not yet approved: {out['counted']} of {out['required']}"
    rows = [f"  {a['created_at']}  {a['actor']}: {a['reason'] or '(no reason)'}" for a in out.get("approvals", [])]
    return "\n".join([f"{out['policy_id']}: {head}", *rows])


def _approvals_out(session, policy_id: str, status) -> dict:
    rows = approvals_svc.list_approvals(session, policy_id)
    return {**status.as_dict(), "approvals": [r.model_dump(mode="json") for r in rows]}


@handle_errors
def policy_approve(policy_id: str = typer.Argument(...),
                   reason: str = typer.Option(..., "--reason", help="Why it may leave shadow (audited)."),
                   actor: str | None = typer.Option(None, "--actor", help="Your name, recorded as cli:<name> (two "
                                                    "approvers must be two different names)."),
                   as_json: bool = JsonOpt) -> None:
    """Approve a policy to leave shadow (canary, then active); audited with who and why."""
    settings, engine = cli_context()
    who = f"cli:{actor}" if actor else "cli"
    with session_scope(engine) as session:
        status = approvals_svc.approve(session, policy_id, actor=who, reason=reason,
                                       rules=approvals_svc.ApprovalRules.from_settings(settings))
        out = _approvals_out(session, policy_id, status)
    emit(out, as_json, lambda: _approval_text(out))


@handle_errors
def policy_approvals(policy_id: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """A policy's approvals, and whether they are enough for it to leave shadow."""
    settings, engine = cli_context()
    with session_scope(engine) as session:
        status = approvals_svc.approval_status_of(session, policy_id,
                                                  approvals_svc.ApprovalRules.from_settings(settings))
        out = _approvals_out(session, policy_id, status)
    emit(out, as_json, lambda: _approval_text(out))


@handle_errors
def policy_promote(policy_id: str = typer.Argument(...),
                   force: bool = typer.Option(False, "--force", help="Promote even if the OPE gate fails (audited)."),
                   min_ess: float = typer.Option(100.0, "--min-ess", help="Gate: least effective sample size."),
                   max_regression: float = typer.Option(0.0, "--max-regression", help="Gate: allowed drop of the "
                                                        "lower confidence bound below the active policy's value."),
                   as_json: bool = JsonOpt) -> None:
    """Canary -> active (the previous active is retired), after the off-policy evaluation gate."""
    settings, engine = cli_context()
    out = svc.promote(settings, engine, policy_id, actor="cli", force=force, min_effective_sample_size=min_ess,
                      max_regression=max_regression)
    gate = out["gate"]
    note = "gate passed" if gate.get("passed") else ("gate skipped" if not gate.get("checked") else "gate FAILED, forced")
    emit(out, as_json, lambda: "\n".join(f"{c['id']} -> {c['state']}" for c in out["changed"]) + f"\n({note})")


@handle_errors
def policy_rollback(policy_id: str = typer.Argument(...),
                    reason: str = typer.Option("manual", "--reason", help="Recorded in the audit log."),
                    as_json: bool = JsonOpt) -> None:
    """Take a shadow or canary out of traffic, or restore the previous active policy."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        out = _changed(svc.rollback(session, policy_id, actor="cli", reason=reason))
    emit(out, as_json, lambda: _changed_text(out))


@handle_errors
def policy_check_canary(decision_type: str = typer.Argument(...),
                        min_decisions: int | None = typer.Option(
                            None, "--min-decisions", help="Default: ARBITER_CANARY_MIN_DECISIONS."),
                        min_outcomes: int | None = typer.Option(
                            None, "--min-outcomes", help="Default: ARBITER_CANARY_MIN_OUTCOMES."),
                        max_block_rate_increase: float | None = typer.Option(
                            None, "--max-block-rate-increase", help="Default: ARBITER_CANARY_MAX_BLOCK_RATE_DELTA."),
                        max_reward_drop: float | None = typer.Option(
                            None, "--max-reward-drop", help="Default: ARBITER_CANARY_MAX_REWARD_DROP."),
                        method: str | None = typer.Option(
                            None, "--method", help="sequential | fixed. Default: ARBITER_CANARY_METHOD."),
                        alpha: float | None = typer.Option(None, "--alpha", help="Default: ARBITER_CANARY_ALPHA."),
                        as_json: bool = JsonOpt) -> None:
    """Compare the canary with the active policy and roll it back when it is worse.

    The thresholds are the configured ones (``ARBITER_CANARY_*``, the same the automatic rollback uses); a flag
    overrides one of them for this run only. The verdict is rollback, promote (evidence of not worse at the
    margins) or continue, with each metric's effect, always-valid interval, p-value and n."""
    import dataclasses

    settings, engine = cli_context()
    overrides = {"min_decisions": min_decisions, "min_outcomes": min_outcomes,
                 "max_block_rate_increase": max_block_rate_increase, "max_reward_drop": max_reward_drop,
                 "method": method, "alpha": alpha}
    thresholds = dataclasses.replace(svc.configured_canary_thresholds(settings),
                                     **{k: v for k, v in overrides.items() if v is not None})
    with session_scope(engine) as session:
        out = svc.check_canary(session, decision_type, thresholds=thresholds)
    out["thresholds"] = dataclasses.asdict(thresholds)
    emit(out, as_json, lambda: _canary_text(out))


def _canary_text(out: dict) -> str:
    head = ("ROLLED BACK: " if out["rolled_back"] else f"{out.get('decision') or 'ok'}: ") + (
        "; ".join(out["reasons"]) or "no evidence of worse")
    lines = [head]
    for t in out.get("statistics") or []:
        if t["status"] == "burn_in":
            lines.append(f"  {t['metric']}: burn-in (canary n={t['n_canary']})")
        else:
            lines.append(f"  {t['metric']}: canary {t['canary']:.4f} vs active {t['control']:.4f}, effect "
                         f"{t['effect']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], p={t['p_value']:.3g}, "
                         f"n={t['n_canary']}/{t['n_control']}: {t['status']}")
    return "\n".join(lines)


@handle_errors
def ope(policy: str = typer.Option(..., "--policy", help="PolicyVersion id (finite-action decision type)."),
        limit: int | None = typer.Option(None, "--limit", min=1, help="Only the newest N logged decisions."),
        bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap resamples for the intervals."),
        as_json: bool = JsonOpt) -> None:
    """Off-policy evaluation (IPS, SNIPS, DR) of a policy over logged decisions with rewards.

    Fewer than 30 logged decisions: the report warns (stderr, and `warnings` in --json); none: a clear error
    (`no_logs`). An undefined interval is null, never NaN."""
    settings, engine = cli_context()
    out = svc.evaluate_policy(settings, engine, policy, limit=limit, n_bootstrap=bootstrap)
    for warning in out["warnings"]:
        typer.echo(f"warning: {warning}", err=True)

    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.4f}"

    def text() -> str:
        lines = [f"{out['n']} logged decisions; effective sample size {out['effective_sample_size']:.0f}"]
        for name, e in out["estimates"].items():
            lines.append(f"{name:<6} {num(e['value'])}  [{num(e['ci_low'])}, {num(e['ci_high'])}]")
        lines.append(f"baseline {num(out['baseline']['value'])} ({out['baseline']['source']})")
        return "\n".join(lines)

    emit(out, as_json, text)


def _training_out(row: PolicyVersion, result) -> dict:
    return {"policy_id": row.id, "name": row.name, "state": row.state, "artifact_path": row.artifact_path,
            "metrics": result.metrics, "skipped": result.skipped, "resumed_from": result.resumed_from,
            "lineage": result.manifest.get("lineage")}


@handle_errors
def train_dpo(recipe: Path = typer.Option(RECIPES / "dpo_content.yaml", "--recipe", help="Recipe YAML file, or a shipped recipe's name (dpo_content, dpo_routing)."),
              data: Path | None = typer.Option(None, "--data", help="Pair file (prompt | conversational | hh JSONL)."),
              snapshot: str | None = typer.Option(None, "--snapshot", help="DatasetSnapshot id of labels."),
              from_outcomes: bool = typer.Option(False, "--from-outcomes", help="Pairs from logged decisions' rewards."),
              max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Override the recipe's length."),
              as_json: bool = JsonOpt) -> None:
    """Train a policy with DPO (+LoRA) and register it as a candidate."""
    from app.services.models.policy_training import train_dpo_job

    settings, engine = cli_context()
    logging.getLogger("policies").setLevel(logging.INFO)
    row, result = train_dpo_job(settings, engine, recipe_path=resolve_recipe(recipe), data=data, snapshot_id=snapshot,
                                from_outcomes=from_outcomes, max_steps=max_steps, wrap_training=_stderr_only)
    out = _training_out(row, result)
    emit(out, as_json, f"registered candidate {row.id} ({row.name}); loss {result.metrics.get('train_loss')}")


@handle_errors
def train_rl(recipe: Path = typer.Option(RECIPES / "rl_content_grpo.yaml", "--recipe", help="Recipe YAML file, or a shipped recipe's name (rl_content_grpo, rl_content_rloo)."),
             reward_model: str | None = typer.Option(None, "--reward-model", help="RewardModelVersion id (default: active)."),
             data: Path | None = typer.Option(None, "--data", help="Prompts from a pair file."),
             snapshot: str | None = typer.Option(None, "--snapshot", help="Prompts from a DatasetSnapshot."),
             from_decisions: bool = typer.Option(False, "--from-decisions", help="Prompts from logged decisions."),
             max_steps: int | None = typer.Option(None, "--max-steps", min=1, help="Override the recipe's length."),
             as_json: bool = JsonOpt) -> None:
    """Train a policy online (GRPO or RLOO, per the recipe) against a reward model; register it as a candidate."""
    from app.services.models.policy_training import train_rl_job

    settings, engine = cli_context()
    logging.getLogger("policies").setLevel(logging.INFO)
    row, result = train_rl_job(settings, engine, recipe_path=resolve_recipe(recipe), reward_model_id=reward_model, data=data,
                               snapshot_id=snapshot, from_decisions=from_decisions, max_steps=max_steps,
                               wrap_training=_stderr_only)
    out = _training_out(row, result)
    emit(out, as_json, f"registered candidate {row.id} ({row.name}); reward model {row.reward_model_id}")


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["policy"]
    group.command("list")(policy_list)
    group.command("shadow")(policy_shadow)
    group.command("approve")(policy_approve)
    group.command("approvals")(policy_approvals)
    group.command("canary")(policy_canary)
    group.command("promote")(policy_promote)
    group.command("rollback")(policy_rollback)
    group.command("check-canary")(policy_check_canary)
    groups["train"].command("dpo")(train_dpo)
    groups["train"].command("rl")(train_rl)
    cli.command("ope")(ope)
