"""Mirroring the trust-and-safety review queue to an Argilla dataset, and reviewers' answers back.

- `push_review_items`: every pending review item not yet in the dataset becomes a record keyed by
  its id. Argilla itself is the record of what was pushed (its record ids are the item ids, and it
  upserts by id), so re-running pushes nothing new and a push that crashed resumes. An item already
  decided in Arbiter is never pushed. If its record was pushed earlier and still shows "pending",
  the record is updated to show Arbiter's status and, when no reviewer submitted an answer there,
  Arbiter's verdict is written as the syncing user's submitted response: that completes the record,
  so it leaves annotators' pending queues and nobody redoes it.
- `pull_review_verdicts`, and `ingest_review_event` for the webhook: a submitted answer becomes a
  verdict through `review.decide`, the path the API takes, so the audit entry and the training data
  are the same; the reviewer is recorded as `argilla:<username>`. An item Arbiter already decided
  is skipped and reported, never overwritten (an answer equal to the recorded verdict, such as
  Arbiter's own mirrored response, is simply unchanged). Answers the review queue refuses (an edit
  without the corrected output, a rejection without a category) are reported and not applied; the
  item stays pending, so a corrected answer is applied by a later pull. An answer given before an
  admin reopened the item (`review.reopen`) is the verdict that was withdrawn: it is skipped
  ("superseded") until the reviewer changes it; the push shows the record as pending again.
- `sync_review`: pull, then push, so that verdicts just pulled close their records in the same run.

What it does not do: run inside the decision path. A decision never waits for Argilla; the mirror
is `arbiter review sync` (run it from a scheduler) plus the Argilla webhook for answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app.audit import append_audit
from app.db import session_scope
from app.errors import Conflict, InvalidInput, NotFound
from app.models import ReviewItem
from app.services.argilla import argilla_error, id_chunks
from app.services.review import queue as review
from app.settings import Settings
from labeling.argilla import (
    ArgillaClient,
    ArgillaClientError,
    InvalidWebhook,
    ReviewAnswer,
    ReviewDatasetSpec,
    ReviewQueue,
    ReviewRecord,
    ReviewResponse,
    WebhookEvent,
    parse_review_response_event,
)
from policies.decision_types import DecisionType

__all__ = [
    "ReviewOutcome",
    "ReviewPullReport",
    "ReviewPushReport",
    "ReviewSyncReport",
    "apply_review_response",
    "ingest_review_event",
    "pull_review_verdicts",
    "push_review_items",
    "review_dataset_spec",
    "sync_review",
]

log = logging.getLogger(__name__)


def review_dataset_spec(settings: Settings, name: str | None = None) -> ReviewDatasetSpec:
    """The review dataset of these settings, with the review queue's category taxonomy."""
    return ReviewDatasetSpec(
        name=name or settings.argilla_review_dataset,
        workspace=settings.argilla_review_workspace,  # reviewers only: annotators cannot open it
        categories=review.CATEGORIES,
    )


# ---------------------------------------------------------------------------- push


@dataclass
class ReviewPushReport:
    dataset: str
    pending: int = 0  # undecided items in Arbiter
    pushed: int = 0  # records added now
    already_present: int = 0  # pending items whose record was pushed before
    closed: int = 0  # records of items decided since they were pushed, now showing the verdict
    reopened: int = 0  # records of items an admin reopened, showing "pending" again

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record(item: ReviewItem, answer: ReviewAnswer | None = None) -> ReviewRecord:
    return ReviewRecord(
        item_id=item.id,
        content=item.content or "",
        decision_type=item.decision_type,
        kind=item.kind,
        context=item.context or {},
        reasons=item.reasons or [],
        arbiter_status=item.status,
        answer=answer,
    )


def _verdict_of(item: ReviewItem) -> ReviewAnswer:
    """The verdict Arbiter recorded, in the dataset's terms."""
    verdict = next(v for v, status in review.VERDICTS.items() if status == item.status)
    return ReviewAnswer(verdict, item.category, item.note, item.edited_content, item.safety_layer)


def push_review_items(
    engine: Engine,
    client: ArgillaClient,
    spec: ReviewDatasetSpec,
    actor: str = "cli",
    batch_size: int = 100,
) -> ReviewPushReport:
    """Push the pending items not yet in the dataset and close the records of decided ones (see
    the module docstring). Each batch Argilla accepted is audited in its own transaction."""
    queue = ReviewQueue(client, spec)
    try:
        states = queue.records()
    except ArgillaClientError as exc:
        raise argilla_error(exc) from exc
    open_ids = sorted(i for i, state in states.items() if state.arbiter_status == "pending")
    with Session(engine, expire_on_commit=False) as session:
        pending = list(
            session.exec(
                select(ReviewItem)
                .where(ReviewItem.status == "pending")
                .order_by(col(ReviewItem.created_at), col(ReviewItem.id))
            ).all()
        )
        decided = [
            item
            for chunk in id_chunks(open_ids)
            for item in session.exec(
                select(ReviewItem).where(col(ReviewItem.id).in_(chunk), ReviewItem.status != "pending")
            )
        ]
    new = [_record(item) for item in pending if item.id not in states]
    # Reopened by an admin: the record still shows the withdrawn verdict; show it as pending again.
    reopened = [_record(item) for item in pending
                if item.id in states and states[item.id].arbiter_status not in (None, "pending")]
    # Only where nobody answered in Argilla: a reviewer's submitted answer already completes the record.
    closing = [_record(item, None if states[item.id].submitted else _verdict_of(item)) for item in decided]
    report = ReviewPushReport(dataset=spec.name, pending=len(pending), already_present=len(pending) - len(new))

    def audited(action: str) -> Callable[[list[str]], None]:
        def confirm(ids: list[str]) -> None:
            with session_scope(engine) as session:
                append_audit(session, actor, action, "argilla_dataset", spec.name,
                             {"n": len(ids), "review_item_ids": ids})

        return confirm

    try:
        report.pushed = len(queue.log(new, batch_size, on_confirmed=audited("argilla.review_pushed")))
        report.reopened = len(queue.log(reopened, batch_size, on_confirmed=audited("argilla.review_reopened")))
        report.closed = len(queue.log(closing, batch_size, on_confirmed=audited("argilla.review_closed")))
    except ArgillaClientError as exc:
        raise argilla_error(exc) from exc
    return report


# ---------------------------------------------------------------------------- pull / webhook


@dataclass(frozen=True)
class ReviewOutcome:
    """What one reviewer's answer did: applied | unchanged | discarded | draft | superseded |
    already_decided | invalid | unknown_item, with a message for the ones that are reported."""

    kind: str
    message: str = ""
    comparisons: int = 0  # preference pairs an applied verdict created


@dataclass
class ReviewPullReport:
    dataset: str
    responses: int = 0  # submitted and discarded responses read
    applied: int = 0  # verdicts recorded in Arbiter
    unchanged: int = 0  # answers equal to the verdict Arbiter holds (pulled before, or its own mirror)
    discarded: int = 0  # the reviewer skipped the item: no verdict
    superseded: int = 0  # answers given before an admin reopened the item: the withdrawn verdict
    comparisons: int = 0  # preference pairs the applied verdicts created
    already_decided: list[str] = field(default_factory=list)  # skipped: verdicts are final
    invalid: list[str] = field(default_factory=list)  # refused by the review queue, not applied
    unknown_items: list[str] = field(default_factory=list)  # records that are not Arbiter's items
    errors: list[str] = field(default_factory=list)  # responses that could not be read

    def add(self, outcome: ReviewOutcome) -> None:
        if outcome.kind in ("applied", "unchanged", "discarded", "superseded"):
            setattr(self, outcome.kind, getattr(self, outcome.kind) + 1)
            self.comparisons += outcome.comparisons
            return
        reported = {"already_decided": self.already_decided, "invalid": self.invalid,
                    "unknown_item": self.unknown_items}
        if outcome.kind in reported:
            reported[outcome.kind].append(outcome.message)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _same_verdict(item: ReviewItem, answer: ReviewAnswer) -> bool:
    """Whether the answer is the verdict Arbiter holds (then nothing conflicts, whoever gave it)."""
    verdict = review.LEGACY_VERDICTS.get(answer.verdict, answer.verdict)
    category = answer.category or ("safe" if verdict == "serve" else None)
    return (
        review.VERDICTS.get(verdict) == item.status
        and category == item.category
        and answer.safety_layer in (None, item.safety_layer)
        and (answer.edited_content or None) == (item.edited_content or None)
    )


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)


def apply_review_response(
    session: Session,
    response: ReviewResponse,
    decision_types: Mapping[str, DecisionType] | None = None,
) -> ReviewOutcome:
    """Record one reviewer's answer as a verdict, in the caller's transaction (see module doc).

    Nothing is written unless the outcome is "applied": `review.decide` validates an answer before
    it writes, and refuses a second verdict without writing.
    """
    if response.status == "draft":
        return ReviewOutcome("draft")
    if response.answer is None:
        return ReviewOutcome("discarded")
    answer = response.answer
    item = session.get(ReviewItem, response.item_id)
    if item is None:
        return ReviewOutcome("unknown_item", f"{response.item_id}: no such review item in Arbiter")
    if item.status != "pending":
        if _same_verdict(item, answer):
            return ReviewOutcome("unchanged")
        return ReviewOutcome(
            "already_decided",
            f"{item.id}: {response.annotator} answered {answer.verdict!r}, but Arbiter already has "
            f"{item.status!r} by {item.reviewer}; not overwritten",
        )
    if item.reopened_at is not None and response.responded_at <= _aware(item.reopened_at):
        return ReviewOutcome("superseded")
    try:
        result = review.decide(
            session,
            item.id,
            answer.verdict,
            reviewer=f"argilla:{response.annotator}",
            category=answer.category,
            note=answer.note,
            edited_content=answer.edited_content,
            safety_layer=answer.safety_layer,
            decision_types=decision_types,
        )
    except InvalidInput as exc:
        return ReviewOutcome("invalid", f"{item.id}: {response.annotator}'s answer was not applied: {exc.message}")
    except Conflict as exc:  # decided elsewhere between the read above and the update
        return ReviewOutcome("already_decided", f"{item.id}: {exc.message}")
    return ReviewOutcome("applied", comparisons=len(result.comparison_ids))


def pull_review_verdicts(
    engine: Engine,
    client: ArgillaClient,
    spec: ReviewDatasetSpec,
    decision_types: Mapping[str, DecisionType] | None = None,
) -> ReviewPullReport:
    """Turn every submitted answer of the dataset into a verdict, one transaction per answer."""
    try:
        pulled = ReviewQueue(client, spec).pull()
    except ArgillaClientError as exc:
        raise argilla_error(exc) from exc
    report = ReviewPullReport(dataset=spec.name, errors=list(pulled.errors), responses=len(pulled.responses))
    # Oldest first: when two reviewers answered the same item, the first answer is the verdict.
    for response in sorted(pulled.responses, key=lambda r: r.responded_at):
        with session_scope(engine) as session:
            report.add(apply_review_response(session, response, decision_types))
    return report


def ingest_review_event(session: Session, settings: Settings, event: WebhookEvent) -> dict[str, Any]:
    """Apply a verified `response.*` event of the review dataset (from `ingest_webhook`).

    A reported outcome (already decided, invalid) still answers 200: Argilla redelivering the same
    answer cannot change it.
    """
    try:
        _, response = parse_review_response_event(event)
    except InvalidWebhook as exc:
        raise InvalidInput(str(exc)) from exc
    if response.status == "draft":
        return {"status": "ignored", "event": event.type, "reason": "draft"}
    outcome = apply_review_response(session, response, review.decision_types_for(settings))
    if outcome.kind == "unknown_item":
        raise NotFound(outcome.message)
    session.commit()
    if outcome.message:
        log.warning("Argilla review answer %s: %s", outcome.kind, outcome.message)
    body: dict[str, Any] = {"status": outcome.kind, "event": event.type, "review_item_id": response.item_id}
    if outcome.message:
        body["detail"] = outcome.message
    return body


# ---------------------------------------------------------------------------- both


@dataclass
class ReviewSyncReport:
    pulled: ReviewPullReport
    pushed: ReviewPushReport

    def to_dict(self) -> dict[str, Any]:
        return {"pulled": self.pulled.to_dict(), "pushed": self.pushed.to_dict()}


def sync_review(
    engine: Engine,
    client: ArgillaClient,
    spec: ReviewDatasetSpec,
    actor: str = "cli",
    decision_types: Mapping[str, DecisionType] | None = None,
) -> ReviewSyncReport:
    """Pull answers into verdicts, then push new items and close decided ones."""
    pulled = pull_review_verdicts(engine, client, spec, decision_types)
    return ReviewSyncReport(pulled, push_review_items(engine, client, spec, actor=actor))
