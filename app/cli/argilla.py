"""`arbiter argilla up|down|status|push|pull|webhook`: human annotation in Argilla."""

from __future__ import annotations

import typer

from app.cli.common import JsonOpt, cli_context, emit, fail, handle_errors, lazy_module
from app.errors import ArbiterError, Unavailable
from labeling.selection import STRATEGIES

# Both import the Argilla SDK (pandas, numpy: seconds): loaded when an argilla command runs, not for --help.
sync = lazy_module("app.services.labels.argilla_sync")
argilla = lazy_module("app.services.argilla")
embedded = lazy_module("labeling.argilla")


@handle_errors
def up(as_json: bool = JsonOpt) -> None:
    """Start the embedded Argilla (argilla-server, no Elasticsearch); safe to run twice."""
    settings, _ = cli_context(migrate=False)
    config = argilla.embedded_config(settings)
    try:
        instance = embedded.start_embedded(config)
    except embedded.EmbeddedArgillaError as exc:
        raise Unavailable(str(exc), code="argilla_start_failed") from exc
    out = {
        "url": instance.url,
        "already_running": instance.already_running,
        "workspace": instance.workspace,
        "owner": {"username": instance.owner.username, "password": instance.owner.password,
                  "api_key": instance.owner.api_key},
        "annotator": {"username": instance.annotator.username, "password": instance.annotator.password},
        "reviewer": ({"username": instance.reviewer.username, "password": instance.reviewer.password}
                     if instance.reviewer else None),
        "review_workspace": instance.review_workspace,
        "server_pid": instance.server_pid,
        "worker_pid": instance.worker_pid,
        "data_dir": str(config.data_dir),
    }
    emit(out, as_json, lambda: "\n".join([
        f"Argilla {'already running' if instance.already_running else 'started'} at {instance.url}",
        f"  annotator: {instance.annotator.username} / {instance.annotator.password}  (workspace {instance.workspace})",
        *([f"  reviewer:  {instance.reviewer.username} / {instance.reviewer.password}  "
           f"(workspace {instance.review_workspace}: the review dataset; annotators cannot open it)"]
          if instance.reviewer else []),
        f"  owner:     {instance.owner.username} / {instance.owner.password}  (API key {instance.owner.api_key})",
        f"  workspace: {instance.workspace}; files in {config.data_dir}",
    ]))


def down(as_json: bool = JsonOpt) -> None:
    """Stop the embedded Argilla started by `up` (the processes in its pid files)."""
    settings, _ = cli_context(migrate=False)
    stopped = embedded.stop_embedded(argilla.embedded_config(settings))
    emit({"stopped_pids": stopped}, as_json, f"stopped {len(stopped)} process(es)" if stopped else "Argilla was not running")


def status(as_json: bool = JsonOpt) -> None:
    """Whether the embedded Argilla runs and answers."""
    settings, _ = cli_context(migrate=False)
    instance = embedded.embedded_status(argilla.embedded_config(settings))
    out = {"running": instance is not None, "url": instance.url if instance else None}
    emit(out, as_json, f"running at {instance.url}" if instance else "not running")
    if instance is None:
        raise typer.Exit(1)


@handle_errors
def push(
    strategy: str = typer.Option("uncertainty", help=f"Which comparisons first: {', '.join(STRATEGIES)}."),
    limit: int = typer.Option(100, min=1, help="At most this many comparisons (the annotation budget)."),
    dataset: str | None = typer.Option(None, help="Argilla dataset (default ARBITER_ARGILLA_DATASET)."),
    min_submitted: int = typer.Option(1, min=1, help="Annotators needed per record (only when creating the dataset)."),
    source: str | None = typer.Option(None, help="Only comparisons from this source (e.g. dataset:hh.jsonl)."),
    as_json: bool = JsonOpt,
) -> None:
    """Push comparisons not yet in the dataset, most informative first."""
    if strategy not in STRATEGIES:
        fail(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}", code=2, as_json=as_json)
    settings, engine = cli_context()
    client = argilla.open_client(argilla.argilla_connection(settings))
    report = sync.push_comparisons(engine, client, sync.dataset_spec(settings, dataset, min_submitted),
                              strategy=strategy, limit=limit, source=source, actor="cli:argilla.push",
                              suggestions=sync.suggestion_policy(settings))
    emit(report.to_dict(), as_json, lambda: (
        f"{report.pushed} pushed ({report.suggested} with a reliable judge's verdict pre-selected), "
        f"{report.already_present} already there "
        f"(selected {report.selected} of {report.considered} by {strategy}: {report.reasons}) -> {report.dataset}"))


@handle_errors
def pull(dataset: str | None = typer.Option(None, help="Argilla dataset (default ARBITER_ARGILLA_DATASET)."),
         as_json: bool = JsonOpt) -> None:
    """Turn submitted and discarded responses into human labels (changed answers update them)."""
    settings, engine = cli_context()
    client = argilla.open_client(argilla.argilla_connection(settings))
    report = sync.pull_labels(engine, client, sync.dataset_spec(settings, dataset), actor="cli:argilla.pull")
    emit(report.to_dict(), as_json, lambda: (
        f"{report.responses} responses: {report.created} new labels, {report.updated} updated, "
        f"{report.unchanged} unchanged, {report.unknown_comparisons} not Arbiter's"
        + (f"; {len(report.errors)} errors: {report.errors[:3]}" if report.errors else "")))


@handle_errors
def webhook(url: str = typer.Option(..., help="Arbiter's webhook endpoint, e.g. http://host:8000/v1/labeling/argilla/webhook"),
            as_json: bool = JsonOpt) -> None:
    """Register Arbiter's webhook in Argilla (response.created / response.updated) and keep its secret."""
    settings, _ = cli_context(migrate=False)
    if not url.startswith(("http://", "https://")):
        raise ArbiterError(f"url must be http(s), got {url!r}", code="invalid_input", status=422)
    path = argilla.register_webhook(settings, argilla.open_client(argilla.argilla_connection(settings)), url)
    emit({"url": url, "secret_file": str(path)}, as_json,
         f"Argilla will call {url}; its signing secret is in {path} (the API reads it from there)")


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["argilla"]
    group.command("up")(up)
    group.command("down")(down)
    group.command("status")(status)
    group.command("push")(push)
    group.command("pull")(pull)
    group.command("webhook")(webhook)
