"""`arbiter monitor report`: the drift, action, safety and review monitors (``app.services.monitoring``)."""

from __future__ import annotations

import typer

from app.cli.common import JsonOpt, cli_context, emit, handle_errors, lazy_module
from app.db import session_scope

# scipy (the statistics) is imported when a command runs, not for --help.
monitoring = lazy_module("app.services.monitoring")


@handle_errors
def monitor_report(decision_type: str | None = typer.Option(None, "--decision-type", help="Only this decision type."),
                   record: bool = typer.Option(True, "--record/--no-record",
                                               help="Keep the readings as history (default) or only print them."),
                   as_json: bool = JsonOpt) -> None:
    """Every monitor of every serving policy: value, threshold, status (ok | alert | insufficient_data).

    Each policy's latest ARBITER_MONITOR_WINDOW_DECISIONS decisions against its first
    ARBITER_MONITOR_REFERENCE_DECISIONS (or first ARBITER_MONITOR_REFERENCE_HOURS); the same data as
    GET /v1/monitoring/report."""
    settings, engine = cli_context()
    with session_scope(engine) as session:
        out = monitoring.monitor_report(session, settings, decision_type=decision_type, record=record)
    emit(out, as_json, lambda: _text(out))


def _text(out: dict) -> str:
    lines = [f"{len(out['alerts'])} alert(s)"]
    for group in out["groups"]:
        scope = f"policy {group['policy_id']} ({group['state']})" if group["policy_id"] else "decision type"
        lines.append(f"{group['decision_type']} / {scope}")
        for r in group["readings"]:
            value = "n/a" if r["value"] is None else f"{r['value']:.4g}"
            name = f"{r['monitor']}{'[' + r['key'] + ']' if r['key'] else ''}"
            lines.append(f"  {r['status'].upper():<17} {name:<40} {value:>10}  (threshold {r['threshold']:.4g})")
    return "\n".join(lines)


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = typer.Typer(help="Monitors: input and reward drift, actions, safety rates, review backlog.",
                        no_args_is_help=True)
    group.command("report")(monitor_report)
    cli.add_typer(group, name="monitor")
