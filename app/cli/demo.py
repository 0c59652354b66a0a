"""`arbiter demo`: the whole feedback loop on embedded defaults (see app/demo/)."""

from __future__ import annotations

import typer

from app.cli.common import JsonOpt, emit, handle_errors
from app.settings import get_settings


@handle_errors
def demo(
    with_argilla: bool = typer.Option(False, "--with-argilla", help="Start the embedded Argilla and send it the most uncertain pairs."),
    train_tickets: int = typer.Option(240, min=16, help="Simulated tickets routed by the exploring base policy."),
    eval_tickets: int = typer.Option(120, min=8, help="Held-out tickets for the before/after table."),
    content_prompts: int = typer.Option(8, min=1, help="Content prompts drafted twice by the base content policy."),
    rollout_tickets: int = typer.Option(60, min=4, help="Requests during shadow and canary."),
    dpo_pairs: int = typer.Option(160, min=8, help="DPO pairs (reward-model ranked)."),
    dpo_max_steps: int = typer.Option(0, min=0, help="Cap on DPO optimizer steps (0: the recipe's epochs)."),
    port: int = typer.Option(8000, help="Port of the API server (the next free one if taken)."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Start the API and run sample requests through it."),
    keep_serving: bool = typer.Option(True, "--keep-serving/--stop-serving", help="Leave the API running when the demo ends."),
    as_json: bool = JsonOpt,
) -> None:
    """Run the whole loop on embedded defaults (no API keys, no GPU) and print what to try next."""
    from app.demo import DemoOptions, run_demo

    options = DemoOptions(train_tickets=train_tickets, eval_tickets=eval_tickets, content_prompts=content_prompts,
                          rollout_tickets=rollout_tickets, dpo_pairs=dpo_pairs, with_argilla=with_argilla, serve=serve,
                          port=port, keep_serving=keep_serving, dpo_max_steps=dpo_max_steps or None)
    say = (lambda line: typer.echo(line, err=True)) if as_json else typer.echo
    summary = run_demo(get_settings(), options, say=say)
    if as_json:
        emit(summary, True)


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    cli.command()(demo)
