"""`arbiter agreement`: how well judges match the human majority and annotators match each other."""

from __future__ import annotations

import typer
from sqlmodel import Session

from app.cli.common import JsonOpt, cli_context, emit
from app.services.labels.agreement import compute_agreement
from labeling.agreement import AgreementReport


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _text(report: AgreementReport) -> str:
    lines = [
        (f"{report.n_items} items with human labels, {report.n_with_majority} with a majority, "
         f"{report.n_multiply_annotated} labelled by 2+ annotators"),
        f"Krippendorff's alpha (nominal) between annotators: {_fmt(report.krippendorff_alpha)}",
    ]
    lines += [f"judge {j.judge}: agreement {_fmt(j.agreement)}, kappa {_fmt(j.kappa)} on {j.n} items" for j in report.judges]
    lines += [f"annotator {a.annotator}: {a.n_labels} labels, agreement with others' majority "
              f"{_fmt(a.agreement_with_majority)} on {a.n_compared}" for a in report.annotators]
    return "\n".join(lines)


def agreement(
    include_imported: bool = typer.Option(False, "--include-imported", help="Count labels imported with datasets as a human rater."),
    as_json: bool = JsonOpt,
) -> None:
    """Agreement report: per judge vs the human majority (agreement, Cohen's kappa), Krippendorff's
    alpha between annotators, and per-annotator counts."""
    _, engine = cli_context()
    with Session(engine) as session:
        report = compute_agreement(session, include_imported=include_imported)
    emit(report.to_dict(), as_json, lambda: _text(report))


def register(cli: typer.Typer, groups: dict[str, typer.Typer]) -> None:
    cli.command("agreement")(agreement)
