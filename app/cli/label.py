"""`arbiter label` (judge the unlabeled comparisons) and `arbiter eval judge` (agreement with humans).

    arbiter label [--judges openai,anthropic,local] [--budget-usd X] [--limit N] [--json]
    arbiter label --batch      # submit to the provider's batch API (half price), store the batch ids
    arbiter label --collect    # ingest the batches that have ended
    arbiter label --jobs       # the newest jobs; a killed run's shows as `stale` until the next run closes it
    arbiter eval judge --judge local --data pairs.jsonl [--limit N] --json

All three are safe to run again at any time, including after a crash or a kill.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlmodel import Session

from app.cli.common import JsonOpt, cli_context, emit, fail, handle_errors, lazy_module

labeling = lazy_module("app.services.labels.judging")  # the judges' SDKs and models: imported when a command runs, not for --help


def _judge_list(judges: str | None) -> list[str] | None:
    return [j.strip() for j in judges.split(",") if j.strip()] if judges else None


def _run_text(report: dict) -> str:
    if not report["selected"]:
        closed = report.get("closed_stale_jobs") or []
        return "nothing to label: every comparison already has a judge label" + (
            f" (closed {len(closed)} stale job(s) of killed runs as interrupted)" if closed else "")
    lines = [(f"labeled {report['labeled']} of {report['selected']} comparisons "
              f"({report['failed']} left unlabeled), cost ${report['cost_usd']:.6f}")]
    names = list(report["judges"])
    for i, (name, stats) in enumerate(report["judges"].items()):
        rate = stats["consistency_rate"]
        # A pair this judge could not label goes to the next judge of the fallback chain; after the last, it waits
        # unlabeled for the next run.
        then = f"handed to {names[i + 1]}" if i + 1 < len(names) else "left unlabeled for the next run"
        lines.append(f"  {name}: {stats['labels']} labels, consistency "
                     f"{'n/a' if rate is None else f'{rate:.2f}'}, ${stats['cost_usd']:.6f}, "
                     f"{stats['failed_pairs']} pairs it could not label ({then})")
    if report["skipped_judges"]:
        lines.append(f"  not configured: {', '.join(report['skipped_judges'])}")
    if report.get("closed_stale_jobs"):
        lines.append(f"  closed {len(report['closed_stale_jobs'])} stale job(s) of killed runs as interrupted")
    return "\n".join(lines)


@handle_errors
def label(
    judges: str | None = typer.Option(None, "--judges", help="Fallback order, e.g. openai,anthropic,local (default: ARBITER_JUDGE_CHAIN)."),
    budget_usd: float | None = typer.Option(None, "--budget-usd", min=0.0, help="Stop paid calls before spending more than this."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Label at most this many comparisons."),
    concurrency: int | None = typer.Option(None, "--concurrency", min=1, help="Judge calls in flight (default: ARBITER_JUDGE_CONCURRENCY)."),
    batch: bool = typer.Option(False, "--batch", help="Submit to the provider's batch API instead of calling it now."),
    collect: bool = typer.Option(False, "--collect", help="Ingest the labels of provider batches that have ended."),
    jobs: bool = typer.Option(False, "--jobs", help="List the newest labeling jobs instead (a killed run's job shows as stale)."),
    as_json: bool = JsonOpt,
) -> None:
    """Label comparisons that have no judge label yet with LLM judges (local fallback without keys)."""
    if sum((batch, collect, jobs)) > 1:
        fail("--batch, --collect and --jobs are separate steps; run one at a time", code=2, as_json=as_json)
    settings, engine = cli_context()
    if jobs:
        from app.services.labels.jobs import list_jobs

        with Session(engine) as session:
            rows = list_jobs(session)
        emit(rows, as_json, lambda: "\n".join(
            f"{r['id'][:12]}  {r['status']:<11} {r['n_done']:>6} labels  ${r['cost_usd']:.6f}  started {r['created_at'][:19]}"
            + (f"  (no heartbeat since {(r['heartbeat_at'] or r['created_at'])[:19]}, {r['host']} pid {r['pid']})" if r["status"] == "stale" else "")
            for r in rows) or "no labeling jobs")
        return
    if collect:
        result = labeling.collect_batches(engine, settings)
        emit(result, as_json, lambda: "\n".join(
            f"{b.get('provider', '?')} batch {b['batch_id']}: " + (
                f"collected {b['labels']} labels ({b['unlabeled']} left unlabeled), ${b['cost_usd']:.6f}" if "labels" in b
                else b.get("error") or f"{b['state']} ({b['succeeded']} done)")
            for b in result["batches"]) or "no pending batches")
        return
    if batch:
        result = labeling.submit_batches(engine, settings, judges=_judge_list(judges), budget_usd=budget_usd, limit=limit)
        emit(result, as_json, lambda: (
            f"submitted {result['comparisons']} comparisons ({result['requests']} requests) to {result['provider']} "
            f"batch {result['batch_id']}, estimated ${result['estimated_cost_usd']:.6f}; collect with `arbiter label --collect`"
            if result["submitted"] else f"nothing submitted: {result['reason']}"))
        return
    report = labeling.run_labeling(engine, settings, judges=_judge_list(judges), budget_usd=budget_usd, limit=limit,
                          concurrency=concurrency, progress=not as_json).to_dict()
    emit(report, as_json, lambda: _run_text(report))


@handle_errors
def eval_judge(
    judge: str = typer.Option(..., "--judge", help="openai | anthropic | local | local-rm | local-smollm2"),
    data: Path = typer.Option(..., "--data", help="Pairs file with human preferences (prompt / conversational / HH)."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Evaluate on the first N pairs."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random A/B placement of the human-chosen response."),
    as_json: bool = JsonOpt,
) -> None:
    """Agreement of a judge with the human labels of a pairs file, and its consistency across orders."""
    settings, engine = cli_context()
    with Session(engine) as session:
        result = labeling.evaluate_judge(settings, judge, str(data), limit=limit, seed=seed, session=session)

    def fmt(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    emit(result, as_json, lambda: (
        f"{judge} on {result['labeled']} pairs of {data}: agreement {fmt(result['agreement'])} "
        f"(ties as half {fmt(result['agreement_ties_half'])}, on decided {fmt(result['agreement_decided'])}, "
        f"coverage {fmt(result['coverage'])}), consistency {fmt(result['consistency_rate'])}, "
        f"cost ${result['cost_usd']:.6f}"))


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    cli.command("label")(label)
    groups["eval"].command("judge")(eval_judge)
