"""`arbiter review list | show | decide | reopen | sync | export-moderation | retrain-harm-classifier`."""

from __future__ import annotations

from pathlib import Path

import typer

from app.cli.common import JsonOpt, cli_context, emit, handle_errors, lazy_module
from app.db import session_scope
from app.models import ReviewItem

# sklearn (the harm classifier) and the Argilla SDK: imported when a command runs, not for --help.
review = lazy_module("app.services.review.queue")
argilla = lazy_module("app.services.argilla")
review_sync_svc = lazy_module("app.services.review.argilla_sync")


HEADER = f"{'ID':<32}  {'STATUS':<8} {'KIND':<9} {'DECISION TYPE':<16} [REASONS] CONTENT"


def _line(item: ReviewItem) -> str:
    codes = ",".join(sorted({r.get("code", "?") for r in item.reasons or []}))
    content = (item.content or "").replace("\n", " ")
    return (
        f"{item.id}  {item.status:<8} {item.kind:<9} {item.decision_type or '-':<16} [{codes}] {content[:60]}"
    )


@handle_errors
def review_list(
    status: str = typer.Option(
        "pending",
        help="pending | approved (the output may be served) | rejected (it must not be) | edited (serve the "
        "reviewer's correction) | all",
    ),
    kind: str | None = typer.Option(None, help="flagged | escalated"),
    decision_type: str | None = typer.Option(None, "--decision-type"),
    category: str | None = typer.Option(None),
    limit: int = typer.Option(100, min=1, max=1000),
    offset: int = typer.Option(0, min=0),
    as_json: bool = JsonOpt,
) -> None:
    """Items waiting for (or with) a reviewer's verdict, oldest first."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        items = review.list_items(
            session,
            status=None if status == "all" else status,
            kind=kind,
            decision_type=decision_type,
            category=category,
            limit=limit,
            offset=offset,
        )
        rows = [item.model_dump(mode="json") for item in items]
        text = "\n".join([HEADER, *(_line(item) for item in items)]) if items else "no review items"
    emit({"items": rows, "count": len(rows)}, as_json, text)


@handle_errors
def review_show(item_id: str = typer.Argument(...), as_json: bool = JsonOpt) -> None:
    """One item with its reasons and context."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        row = review.get_item(session, item_id).model_dump(mode="json")
    emit(row, as_json)


@handle_errors
def review_decide(
    item_id: str = typer.Argument(...),
    verdict: str = typer.Argument(
        ...,
        help="What happens to the output: serve (it may be served as it is), withhold (it must not be served), "
        "edit (serve the corrected output given with --edited). Old names: approve = serve, reject = withhold.",
    ),
    category: str | None = typer.Option(None, help="What the item is about: a harm category (violence, illicit, ...), pii, quality, other; an unknown one is refused with the list."),
    note: str | None = typer.Option(None),
    edited: str | None = typer.Option(None, "--edited", help="The corrected output (edit only)."),
    edited_file: Path | None = typer.Option(
        None, "--edited-file", help="Read the corrected output from a file."
    ),
    safety_layer: str | None = typer.Option(
        None,
        "--safety-layer",
        help="right (it was right to flag or escalate this) | wrong (a false alarm). Default: wrong for serve, "
        "right otherwise.",
    ),
    reviewer: str = typer.Option("cli", help="Who decides (recorded as cli:<name>)."),
    as_json: bool = JsonOpt,
) -> None:
    """Decide an item: whether its output may be served, and whether the safety layer was right.

    A correct block of a harmful prompt is `withhold --safety-layer right --category <harm>`; a false alarm is
    `serve` (the layer was wrong). Contradictions (the layer right while the category is "safe", serving what
    the category calls harmful) are refused. The verdict is audited and becomes training data."""
    settings, engine = cli_context()
    if edited_file is not None:
        edited = edited_file.read_text(encoding="utf-8")
    with session_scope(engine) as session:
        result = review.decide(
            session,
            item_id,
            verdict,
            reviewer=f"cli:{reviewer}",
            category=category,
            note=note,
            edited_content=edited,
            safety_layer=safety_layer,
            decision_types=review.decision_types_for(settings),
        )
        out = result.to_dict()
    emit(
        out,
        as_json,
        f"{item_id}: {out['item']['status']} ({out['item']['category']}; safety layer {out['item']['safety_layer']}); "
        f"{len(out['comparison_ids'])} preference pair(s), "
        f"{out['moderation_examples']} moderation example(s)",
    )


@handle_errors
def review_reopen(
    item_id: str = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="Why the verdict was a mistake (audited)."),
    as_json: bool = JsonOpt,
) -> None:
    """Reopen a mistaken verdict (an admin operation): the item is pending again, the training data the verdict
    made is withdrawn, and the audit log keeps the old verdict and the reason."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        out = review.reopen(session, item_id, actor="cli", reason=reason).model_dump(mode="json")
    emit(out, as_json, f"{item_id}: reopened (pending)")


@handle_errors
def review_sync(
    dataset: str | None = typer.Option(None, help="Argilla dataset (default ARBITER_ARGILLA_REVIEW_DATASET)."),
    as_json: bool = JsonOpt,
) -> None:
    """Mirror the queue to Argilla: answers submitted there become verdicts, then pending items are
    pushed and records of items decided elsewhere are closed. Safe to run again (e.g. every minute)."""
    settings, engine = cli_context()
    client = argilla.open_client(argilla.argilla_connection(settings))
    report = review_sync_svc.sync_review(engine, client, review_sync_svc.review_dataset_spec(settings, dataset), actor="cli:review.sync",
                         decision_types=review.decision_types_for(settings))
    pulled, pushed = report.pulled, report.pushed

    def text() -> str:
        problems = [*pulled.already_decided, *pulled.invalid, *pulled.unknown_items, *pulled.errors]
        pull_line = (
            f"pulled {pulled.responses} answer(s): {pulled.applied} verdict(s) recorded "
            f"({pulled.comparisons} preference pair(s)), {pulled.unchanged} unchanged, {pulled.discarded} discarded, "
            f"{pulled.superseded} from before a reopen, "
            f"{len(pulled.already_decided)} already decided, {len(pulled.invalid)} invalid"
        )
        push_line = (
            f"pushed {pushed.pushed} of {pushed.pending} pending item(s) ({pushed.already_present} already there), "
            f"closed {pushed.closed} decided record(s), showed {pushed.reopened} reopened one(s) as pending "
            f"-> {pushed.dataset}"
        )
        return "\n".join([pull_line, push_line, *(f"  ! {p}" for p in problems)])

    emit(report.to_dict(), as_json, text)


@handle_errors
def review_export_moderation(
    path: Path = typer.Argument(..., help="JSONL file to write."), as_json: bool = JsonOpt
) -> None:
    """Write reviewer verdicts as harm-classifier examples ({"text", "label"} per line)."""
    _, engine = cli_context()
    with session_scope(engine) as session:
        n = review.export_moderation_examples(session, path)
    emit({"path": str(path), "examples": n}, as_json, f"{n} examples -> {path}")


@handle_errors
def review_retrain(as_json: bool = JsonOpt) -> None:
    """Retrain the local harm classifier on the seed set plus every reviewer example (new version)."""
    settings, engine = cli_context()
    with session_scope(engine) as session:
        artifact = review.retrain_harm_classifier(session, review.harm_classifier_dir(settings), actor="cli")
    out = {
        "version": artifact.version,
        "path": artifact.path,
        "n_examples": artifact.n_examples,
        "n_reviewer_examples": artifact.n_new_examples,
        "labels": list(artifact.labels),
    }
    emit(
        out,
        as_json,
        f"harm classifier v{artifact.version}: {artifact.n_new_examples} reviewer examples "
        f"-> {artifact.path}",
    )


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    group = groups["review"]
    group.command("list")(review_list)
    group.command("show")(review_show)
    group.command("decide")(review_decide)
    group.command("reopen")(review_reopen)
    group.command("sync")(review_sync)
    group.command("export-moderation")(review_export_moderation)
    group.command("retrain-harm-classifier")(review_retrain)
