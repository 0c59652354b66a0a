"""Moving comparisons to Argilla and annotators' answers back into labels.

- `push_comparisons`: choose comparisons not yet in the dataset (`labeling.selection`), render
  them, push them with `labeling.argilla.ArgillaClient`. An `ArgillaPush` row (plus an audit
  entry) is written per batch, only after Argilla confirmed it; ids Argilla already holds are
  recorded too, so a crashed push resumes without duplicates.
- `pull_labels` / `upsert_human_labels`: one human label per (comparison, annotator), keyed by the
  Argilla username. A newer response updates the label in place; an older or identical one
  changes nothing (so webhook retries and out-of-order deliveries are harmless). Discarded
  records become labels with choice "discarded"; drafts are not labels.
  (`app.services.argilla_webhook` receives the deliveries and hands this dataset's answers here.)

Connection, client and errors: `app.services.argilla`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.audit import append_audit
from app.db import session_scope
from app.errors import InvalidInput
from app.models import ArgillaPush, Candidate, Comparison, Label, Task, utcnow
from app.services.argilla import argilla_error, id_chunks
from app.services.labels.agreement import compute_agreement
from app.settings import Settings
from labeling.argilla import (
    ArgillaClient,
    ArgillaClientError,
    DatasetSpec,
    HumanResponse,
    PushItem,
)
from labeling.argilla.suggestions import (
    JudgeOpinion,
    JudgeReliability,
    SuggestionPolicy,
    assess_judges,
    choose_suggestion,
    render_judges,
)
from labeling.selection import Candidate as SelectionCandidate
from labeling.selection import select_for_annotation

__all__ = [
    "PullReport",
    "PushReport",
    "dataset_spec",
    "pull_labels",
    "push_comparisons",
    "suggestion_policy",
    "upsert_human_labels",
]

JUDGE_SOURCES = ("llm_judge", "local_model")


# ---------------------------------------------------------------------------- configuration


def dataset_spec(settings: Settings, name: str | None = None, min_submitted: int = 1) -> DatasetSpec:
    return DatasetSpec(name=name or settings.argilla_dataset, workspace=settings.argilla_workspace,
                       min_submitted=min_submitted)


# ---------------------------------------------------------------------------- push


@dataclass
class PushReport:
    dataset: str
    strategy: str
    considered: int = 0  # comparisons not yet in the dataset
    selected: int = 0
    pushed: int = 0
    already_present: int = 0
    suggested: int = 0  # records with a reliable judge's verdict pre-selected
    reasons: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _judge_labels(session: Session, ids: list[str]) -> dict[str, list[Label]]:
    by_comparison: dict[str, list[Label]] = {}
    for chunk in id_chunks(ids):
        rows = session.exec(select(Label).where(col(Label.comparison_id).in_(chunk), col(Label.source).in_(JUDGE_SOURCES)))
        for label in rows:
            by_comparison.setdefault(label.comparison_id, []).append(label)
    return by_comparison


def _selection_candidate(comparison: Comparison, labels: list[Label]) -> SelectionCandidate:
    decisive = [lb for lb in labels if lb.choice in ("a", "b", "tie")]
    margins = [abs(float(lb.details[k])) for lb in labels for k in ("reward_margin", "margin")
               if isinstance(lb.details.get(k), (int, float))]
    return SelectionCandidate(
        comparison_id=comparison.id,
        judge_choices={lb.judge or lb.producer: lb.choice for lb in decisive},
        inconsistent_judges=sum(1 for lb in labels if lb.details.get("consistent") is False),
        reward_margin=min(margins) if margins else None,
    )


def _render_prompt(task: Task) -> str:
    messages = [m for m in task.prompt if str(m.get("content", "")).strip()]
    if not messages:
        return "```json\n" + json.dumps(task.context, indent=2, ensure_ascii=False) + "\n```" if task.context else "(no prompt)"
    if len(messages) == 1 and messages[0].get("role") == "user":
        return str(messages[0]["content"])
    return "\n\n".join(f"**{str(m.get('role', 'user')).capitalize()}:** {m['content']}" for m in messages)


def suggestion_policy(settings: Settings) -> SuggestionPolicy:
    """The `ARBITER_ARGILLA_SUGGESTION_*` thresholds a judge must pass to pre-select its verdict."""
    return SuggestionPolicy(min_consistency=settings.argilla_suggestion_min_consistency,
                            min_labels=settings.argilla_suggestion_min_labels,
                            min_agreement=settings.argilla_suggestion_min_agreement)


def judge_reliability(session: Session, policy: SuggestionPolicy) -> dict[str, JudgeReliability]:
    """Every judge's measured position consistency (over all its labels in the store) and agreement with the
    human majority (`compute_agreement`), assessed against `policy`."""
    consistency: dict[str, list[bool]] = {}
    for judge, producer, details in session.exec(
            select(Label.judge, Label.producer, Label.details).where(col(Label.source).in_(JUDGE_SOURCES))):
        flag = (details or {}).get("consistent")
        if isinstance(flag, bool):
            consistency.setdefault(judge or producer, []).append(flag)
    agreement = {j.judge: (j.n, j.agreement) for j in compute_agreement(session).judges}
    return assess_judges(consistency, agreement, policy)


def _opinions(labels: list[Label]) -> list[JudgeOpinion]:
    return [JudgeOpinion(judge=lb.judge or lb.producer, choice=lb.choice, confidence=lb.confidence,
                         reasoning=lb.rationale or "", consistent=(lb.details or {}).get("consistent"))
            for lb in labels if lb.choice in ("a", "b", "tie")]


def push_comparisons(
    engine: Engine,
    client: ArgillaClient,
    spec: DatasetSpec,
    strategy: str = "uncertainty",
    limit: int = 100,
    source: str | None = None,
    actor: str = "cli",
    batch_size: int = 100,
    suggestions: SuggestionPolicy | None = None,
) -> PushReport:
    """Select up to `limit` comparisons not yet in `spec`'s dataset and push them (see module doc).

    A judge's verdict is pre-selected only when the judge passes `suggestions` (default: the default
    `ARBITER_ARGILLA_SUGGESTION_*` thresholds; `suggestion_policy(settings)` gives the configured ones);
    every judge's answer, confidence and reasoning is shown in the record's `judges` field either way."""
    if limit < 1:
        raise InvalidInput("limit must be at least 1")
    report = PushReport(dataset=spec.name, strategy=strategy)
    with Session(engine, expire_on_commit=False) as session:
        pushed = set(session.exec(select(ArgillaPush.comparison_id).where(ArgillaPush.dataset == spec.name)).all())
        query = select(Comparison).order_by(Comparison.created_at, Comparison.id)
        if source:
            query = query.where(Comparison.source == source)
        comparisons = [c for c in session.exec(query).all() if c.id not in pushed]
        report.considered = len(comparisons)
        labels = _judge_labels(session, [c.id for c in comparisons])
        reliability = judge_reliability(session, suggestions or SuggestionPolicy())
        try:
            selected = select_for_annotation([_selection_candidate(c, labels.get(c.id, [])) for c in comparisons],
                                             budget=limit, strategy=strategy)  # type: ignore[arg-type]
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc
        by_id = {c.id: c for c in comparisons}
        chosen = [by_id[s.comparison_id] for s in selected]
        tasks = {t.id: t for chunk in id_chunks(sorted({c.task_id for c in chosen}))
                 for t in session.exec(select(Task).where(col(Task.id).in_(chunk)))}
        cand_ids = sorted({x for c in chosen for x in (c.candidate_a_id, c.candidate_b_id)})
        cands = {c.id: c for chunk in id_chunks(cand_ids) for c in session.exec(select(Candidate).where(col(Candidate.id).in_(chunk)))}

    items = []
    for s in selected:
        comparison, task = by_id[s.comparison_id], tasks[by_id[s.comparison_id].task_id]
        a, b = cands[comparison.candidate_a_id], cands[comparison.candidate_b_id]
        opinions = _opinions(labels.get(comparison.id, []))
        suggestion = choose_suggestion(opinions, reliability)
        items.append(PushItem(
            comparison_id=comparison.id,
            prompt=_render_prompt(task),
            response_a=a.content or a.action or "",
            response_b=b.content or b.action or "",
            source=comparison.source[:200],
            task_kind=task.decision_type or task.kind,
            priority=s.priority,
            selection_reason=s.reason,
            suggestion=suggestion,
            judges=render_judges(opinions, reliability, suggestion) if opinions else None,
        ))
        report.suggested += suggestion is not None
        report.reasons[s.reason] = report.reasons.get(s.reason, 0) + 1
    report.selected = len(items)
    if not items:
        return report

    def record_confirmed(ids: list[str]) -> None:
        # Its own transaction per batch: what Argilla confirmed stays recorded if a later batch fails.
        with session_scope(engine) as session:
            known = set(session.exec(select(ArgillaPush.comparison_id).where(
                ArgillaPush.dataset == spec.name, col(ArgillaPush.comparison_id).in_(ids))).all())
            new = [i for i in ids if i not in known]
            session.add_all([ArgillaPush(comparison_id=i, dataset=spec.name) for i in new])
            if new:
                append_audit(session, actor, "argilla.pushed", "argilla_dataset", spec.name,
                             {"n": len(new), "comparison_ids": new, "strategy": strategy})

    try:
        result = client.push(spec, items, batch_size=batch_size, on_confirmed=record_confirmed)
    except ArgillaClientError as exc:
        raise argilla_error(exc) from exc
    report.pushed, report.already_present = len(result.pushed), len(result.already_present)
    return report


# ---------------------------------------------------------------------------- pull / webhook


@dataclass
class PullReport:
    dataset: str
    responses: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    unknown_comparisons: int = 0  # records that are not Arbiter comparisons
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def upsert_human_labels(session: Session, dataset: str, responses: Iterable[HumanResponse], actor: str,
                        report: PullReport | None = None) -> PullReport:
    """Create or update one human label per (comparison, annotator), in the caller's transaction."""
    report = report or PullReport(dataset=dataset)
    final = [r for r in responses if r.status in ("submitted", "discarded")]
    report.responses += len(final)
    ids = sorted({r.comparison_id for r in final})
    existing_comparisons = {cid for chunk in id_chunks(ids)
                            for cid in session.exec(select(Comparison.id).where(col(Comparison.id).in_(chunk)))}
    labels: dict[tuple[str, str], Label] = {}
    for chunk in id_chunks(ids):
        for label in session.exec(select(Label).where(col(Label.comparison_id).in_(chunk), Label.source == "human")):
            labels[(label.comparison_id, label.producer)] = label

    changes: list[dict[str, str]] = []
    for response in final:
        if response.comparison_id not in existing_comparisons:
            report.unknown_comparisons += 1
            continue
        choice = response.choice if response.status == "submitted" else "discarded"
        details = {
            "via": "argilla",
            "argilla_dataset": dataset,
            "argilla_response_id": response.response_id,
            "responded_at": _as_utc(response.responded_at).isoformat(),
            "status": response.status,
            "safety_flags": list(response.safety_flags),
        }
        label = labels.get((response.comparison_id, response.annotator))
        if label is None:
            label = Label(comparison_id=response.comparison_id, choice=choice or "discarded", confidence=1.0,
                          rationale=response.rationale or "", source="human", producer=response.annotator[:200],
                          details=details)
            session.add(label)
            labels[(response.comparison_id, response.annotator)] = label
            report.created += 1
            changes.append({"comparison_id": response.comparison_id, "annotator": response.annotator, "change": "created"})
            continue
        if label.details.get("via") != "argilla":
            # An imported dataset label under the same name: never overwrite a label of another origin.
            report.errors.append(f"{response.comparison_id}: annotator {response.annotator!r} collides with a non-Argilla label")
            continue
        previous = label.details.get("responded_at")
        if previous and datetime.fromisoformat(previous) >= _as_utc(response.responded_at):
            report.unchanged += 1  # a retry, or an older delivery arriving late
            continue
        label.choice, label.rationale, label.details, label.updated_at = choice or "discarded", response.rationale or "", details, utcnow()
        session.add(label)
        report.updated += 1
        changes.append({"comparison_id": response.comparison_id, "annotator": response.annotator, "change": "updated"})
    session.flush()
    if changes:
        append_audit(session, actor, "labels.ingested", "argilla_dataset", dataset,
                     {"created": report.created, "updated": report.updated, "changes": changes[:1000]})
    return report


def pull_labels(engine: Engine, client: ArgillaClient, spec: DatasetSpec, actor: str = "cli") -> PullReport:
    """Read every submitted / discarded response of the dataset and upsert the human labels."""
    try:
        pulled = client.pull(spec)
    except ArgillaClientError as exc:
        raise argilla_error(exc) from exc
    report = PullReport(dataset=spec.name, errors=list(pulled.errors))
    with session_scope(engine) as session:
        upsert_human_labels(session, spec.name, pulled.responses, actor, report)
    return report
