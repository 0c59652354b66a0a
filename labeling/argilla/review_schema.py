"""The shape of the trust-and-safety review dataset in Argilla, and the values that cross the boundary.

One Argilla record is one review item (the record id is the review item id, which makes pushes
idempotent). Fields, all markdown: `decision` (the decision type and why the item is in the queue),
`content` (what the policy proposed and the safety layer flagged), `context` (the decision's
context, rendered as a readable list instead of raw JSON) and `reasons` (the safety reasons).
Questions: `verdict` (what happens to the output: serve / withhold / edit, required),
`safety_layer` (was the safety layer right to flag it: right / wrong), `category` (the reviewers'
taxonomy: what the flagged content is), `note`, and `edited_content` (the corrected output, for an
edit). `safety_layer`, `category` and `edited_content` cannot be required: Argilla has no
conditional questions, and serving a false alarm needs none of them (the app fills the defaults).
A dataset created before `safety_layer` existed still works (its answers leave it unsaid), and
answers with the old verdict labels (approve / reject) are read as serve / withhold. Whether
an answer is complete is decided where verdicts are recorded, not here.

Metadata `arbiter_status` says whether Arbiter still waits for a verdict ("pending") or has one
("approved" / "rejected" / "edited"); together with `kind` and `decision_type` it lets a lead
filter the queue in the UI.

Values going out: `ReviewDatasetSpec`, `ReviewRecord` (with an optional `ReviewAnswer`: a verdict
Arbiter already holds, written as the syncing user's submitted response so that the record leaves
annotators' pending queues). Values coming back: `ReviewResponse`.

The taxonomy of categories belongs to the app (the review service) and arrives in the spec. This
module builds SDK objects and parses API JSON; it never talks to a server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

import argilla as rg

from labeling.argilla.schema import ResponseStatus, answer_value, parse_time, shown

__all__ = [
    "REVIEW_VERDICTS",
    "ReviewAnswer",
    "ReviewDatasetSpec",
    "ReviewRecord",
    "ReviewResponse",
    "build_review_settings",
    "fit_answer",
    "parse_review_response",
    "render_context",
    "render_reasons",
    "review_settings_problems",
    "to_review_record",
]

REVIEW_VERDICTS: dict[str, str] = {
    "serve": "Serve: the output may be served as it is",
    "withhold": "Withhold: the output must not be served",
    "edit": "Edit: serve my corrected version (write it below)",
}
LEGACY_REVIEW_VERDICTS = {"approve": "serve", "reject": "withhold"}  # labels of datasets made before
SAFETY_LAYER_LABELS: dict[str, str] = {
    "right": "Right: it caught something real",
    "wrong": "Wrong: a false alarm",
}

REVIEW_FIELDS = ("decision", "content", "context", "reasons")
VERDICT_QUESTION = "verdict"
SAFETY_LAYER_QUESTION = "safety_layer"
CATEGORY_QUESTION = "category"
NOTE_QUESTION = "note"
EDITED_QUESTION = "edited_content"
REVIEW_QUESTIONS = (VERDICT_QUESTION, CATEGORY_QUESTION, NOTE_QUESTION, EDITED_QUESTION)


@dataclass(frozen=True)
class ReviewDatasetSpec:
    """Which dataset mirrors the review queue, and the category taxonomy its reviewers use."""

    name: str
    workspace: str
    categories: tuple[str, ...]
    guidelines: str = (
        "Each record is something Arbiter's safety layer flagged or escalated. Read the content, its "
        "context and the safety reasons, then answer two separate questions. Verdict, about the output: "
        "Serve (it may be served as it is), Withhold (it must not be served) or Edit (write the corrected "
        "output in the last box). Safety layer: Right (it caught something real, e.g. a harmful request "
        "it blocked) or Wrong (a false alarm); left empty, it is Wrong for Serve and Right otherwise. "
        "Category: what the flagged content is (a harm category, pii, ...; 'safe' if nothing is wrong "
        "with it). A correct block of a harmful prompt is Withhold + Right + its harm category; Serve "
        "with a harm category, or Right with 'safe', contradict themselves and are not recorded. Add a "
        "note for the next reviewer when the case is not obvious. Records whose Arbiter status is no "
        "longer pending were decided elsewhere; there is nothing left to do on them."
    )

    def __post_init__(self) -> None:
        if not self.name or not self.workspace:
            raise ValueError("ReviewDatasetSpec needs a dataset name and a workspace")
        if not self.categories or len(set(self.categories)) != len(self.categories):
            raise ValueError("ReviewDatasetSpec needs distinct categories")


@dataclass(frozen=True)
class ReviewAnswer:
    """A verdict on one review item: what a reviewer answered, or what Arbiter recorded."""

    verdict: str  # serve | withhold | edit
    category: str | None = None
    note: str | None = None
    edited_content: str | None = None
    safety_layer: str | None = None  # right | wrong; None: not said


@dataclass(frozen=True)
class ReviewRecord:
    """One review item as reviewers see it in Argilla."""

    item_id: str
    content: str
    decision_type: str | None
    kind: str  # flagged | escalated
    context: Mapping[str, Any] = field(default_factory=dict)
    reasons: Sequence[Mapping[str, Any]] = ()
    arbiter_status: str = "pending"
    answer: ReviewAnswer | None = None  # written as the syncing user's submitted response

    def __post_init__(self) -> None:
        if not str(self.item_id):
            raise ValueError("item_id must be a non-empty string")
        if self.answer is not None and self.answer.verdict not in (*REVIEW_VERDICTS, *LEGACY_REVIEW_VERDICTS):
            raise ValueError(f"unknown verdict {self.answer.verdict!r} for review item {self.item_id}")


@dataclass(frozen=True)
class ReviewResponse:
    """One reviewer's response to one review item, as Argilla holds it now."""

    item_id: str
    annotator: str  # Argilla username
    status: ResponseStatus
    answer: ReviewAnswer | None  # None for a discarded (or empty draft) response
    responded_at: datetime  # last change, timezone-aware UTC
    response_id: str = ""


# ---------------------------------------------------------------------------- settings


def build_review_settings(spec: ReviewDatasetSpec) -> rg.Settings:
    """The Argilla dataset settings of the review dataset. One verdict is final, so one submitted
    response completes a record."""
    return rg.Settings(
        guidelines=spec.guidelines,
        fields=[
            rg.TextField(name="decision", title="Decision", use_markdown=True),
            rg.TextField(name="content", title="Flagged content", use_markdown=True),
            rg.TextField(name="context", title="Context", use_markdown=True),
            rg.TextField(name="reasons", title="Safety reasons", use_markdown=True),
        ],
        questions=[
            rg.LabelQuestion(
                name=VERDICT_QUESTION, title="Verdict: may the output be served?", labels=dict(REVIEW_VERDICTS),
                required=True,
            ),
            rg.LabelQuestion(
                name=SAFETY_LAYER_QUESTION,
                title="Was the safety layer right to flag it? (default: Wrong for Serve, Right otherwise)",
                labels=dict(SAFETY_LAYER_LABELS),
                required=False,
            ),
            rg.LabelQuestion(
                name=CATEGORY_QUESTION,
                title="Category: what the flagged content is (required to withhold or edit)",
                labels=list(spec.categories),
                required=False,
            ),
            rg.TextQuestion(name=NOTE_QUESTION, title="Note (optional)", required=False, use_markdown=False),
            rg.TextQuestion(
                name=EDITED_QUESTION, title="Corrected output (edit only)", required=False, use_markdown=False
            ),
        ],
        metadata=[
            rg.TermsMetadataProperty(name="arbiter_status", title="Arbiter status"),
            rg.TermsMetadataProperty(name="kind", title="Kind"),
            rg.TermsMetadataProperty(name="decision_type", title="Decision type"),
        ],
        distribution=rg.TaskDistribution(min_submitted=1),
    )


def fit_answer(answer: ReviewAnswer, dataset: rg.Dataset) -> ReviewAnswer:
    """`answer` in the terms of an existing dataset, which may predate the current questions: its old verdict
    label (approve / reject) where it lacks the new one, and no `safety_layer` where it has no such question."""
    questions = {q.name: q for q in dataset.questions}
    labels = list(getattr(questions.get(VERDICT_QUESTION), "labels", None) or REVIEW_VERDICTS)
    verdict = answer.verdict
    if verdict not in labels:
        verdict = next((old for old, new in LEGACY_REVIEW_VERDICTS.items() if new == verdict and old in labels),
                       verdict)
    safety_layer = answer.safety_layer if SAFETY_LAYER_QUESTION in questions else None
    return replace(answer, verdict=verdict, safety_layer=safety_layer)


def review_settings_problems(dataset: rg.Dataset) -> list[str]:
    """What an existing dataset lacks to be used as the review dataset (empty when usable)."""
    fields = {f.name for f in dataset.fields}
    questions = {q.name for q in dataset.questions}
    return [f"missing field {name!r}" for name in REVIEW_FIELDS if name not in fields] + [
        f"missing question {name!r}" for name in REVIEW_QUESTIONS if name not in questions
    ]


# ---------------------------------------------------------------------------- rendering


def _inline(value: Any) -> str:
    return shown(value) if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"role", "content"}


def _render(key: str, value: Any, depth: int) -> list[str]:
    pad = "  " * depth
    if isinstance(value, Mapping) and value:
        return [f"{pad}- **{key}:**", *(line for k, v in value.items() for line in _render(str(k), v, depth + 1))]
    if isinstance(value, list) and value and all(_is_message(m) for m in value):
        # A conversation (the chat endpoint's context): one line per turn reads better than JSON.
        turns = [f"{pad}  - **{str(m['role']).capitalize()}:** {_inline(m['content'])}" for m in value]
        return [f"{pad}- **{key}:**", *turns]
    if isinstance(value, list) and all(not isinstance(v, (Mapping, list)) for v in value):
        return [f"{pad}- **{key}:** {', '.join(_inline(v) for v in value) if value else '_(none)_'}"]
    if isinstance(value, (Mapping, list)):
        block = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", f"\n{pad}  ")
        return [f"{pad}- **{key}:**", f"{pad}  ```json", f"{pad}  {block}", f"{pad}  ```"]
    if isinstance(value, str) and "\n" in value:
        quoted = "\n".join(f"{pad}  > {line}" for line in value.splitlines())
        return [f"{pad}- **{key}:**", quoted]
    return [f"{pad}- **{key}:** {_inline(value)}"]


def render_context(context: Mapping[str, Any]) -> str:
    """A decision's context as a markdown list: nested objects indent, conversations read as turns.

    Example: `{"subject": "Refund", "customer": {"tier": "vip"}}` renders as
    "- **subject:** Refund" followed by "- **customer:**" and an indented "- **tier:** vip".
    """
    if not context:
        return "_(no context)_"
    return "\n".join(line for key, value in context.items() for line in _render(str(key), value, 0))


def render_reasons(reasons: Sequence[Mapping[str, Any]]) -> str:
    """The safety reasons, one line each: code, who raised it and what it wanted, the message."""
    if not reasons:
        return "_(no reasons recorded)_"
    lines = []
    for reason in reasons:
        source = reason.get("provider") or reason.get("source") or "safety"
        detail = ", ".join(
            str(x) for x in (reason.get("outcome"), reason.get("category")) if x
        )
        score = reason.get("score")
        if isinstance(score, (int, float)):
            detail += f"{', ' if detail else ''}score {score:.2f}"
        message = f": {reason['message']}" if reason.get("message") else ""
        lines.append(f"- **{reason.get('code', '?')}** ({source}{'; ' + detail if detail else ''}){message}")
    return "\n".join(lines)


def _decision_summary(record: ReviewRecord) -> str:
    why = "escalated: it waits for a reviewer" if record.kind == "escalated" else "flagged by the safety layer"
    return f"**{record.decision_type or 'unknown decision type'}**, {why}"


# ---------------------------------------------------------------------------- records and responses


def _values(answer: ReviewAnswer) -> dict[str, Any]:
    values = {
        VERDICT_QUESTION: answer.verdict,
        SAFETY_LAYER_QUESTION: answer.safety_layer,
        CATEGORY_QUESTION: answer.category,
        NOTE_QUESTION: answer.note,
        EDITED_QUESTION: answer.edited_content,
    }
    # Argilla refuses empty answers to optional questions: leave them out.
    return {k: v for k, v in values.items() if v is not None and (not isinstance(v, str) or v.strip())}


def to_review_record(record: ReviewRecord, user_id: UUID | None = None) -> rg.Record:
    """The Argilla record of one review item; its id is the review item id.

    With `record.answer` and `user_id`, the answer is added as that user's submitted response.
    """
    responses = []
    if record.answer is not None:
        if user_id is None:
            raise ValueError(f"review item {record.item_id}: an answer needs the id of the user it is written as")
        responses = [
            rg.Response(question_name=name, value=value, user_id=user_id, status="submitted")
            for name, value in _values(record.answer).items()
        ]
    metadata = {"arbiter_status": record.arbiter_status, "kind": record.kind}
    if record.decision_type:
        metadata["decision_type"] = record.decision_type
    return rg.Record(
        id=str(record.item_id),
        fields={
            "decision": _decision_summary(record),
            "content": shown(record.content),
            "context": render_context(record.context),
            "reasons": render_reasons(record.reasons),
        },
        metadata=metadata,
        responses=responses,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def parse_review_response(item_id: str, annotator: str, response: dict[str, Any]) -> ReviewResponse:
    """A `ReviewResponse` from the JSON of one Argilla response (records API or webhook).

    Raises ValueError for an unknown status, or a submitted response without a known verdict. An
    answer that is complete here may still be refused when it is recorded (an edit without the
    corrected output, a rejection without a category): those rules live with the review queue.
    """
    status = response.get("status")
    if status not in ("draft", "submitted", "discarded"):
        raise ValueError(f"unknown response status {status!r} for review item {item_id}")
    values = response.get("values")
    verdict = answer_value(values, VERDICT_QUESTION)
    verdict = LEGACY_REVIEW_VERDICTS.get(verdict, verdict)
    if verdict is not None and verdict not in REVIEW_VERDICTS:
        raise ValueError(f"unknown verdict {verdict!r} for review item {item_id}")
    if status == "submitted" and verdict is None:
        raise ValueError(f"submitted response without a verdict for review item {item_id}")
    answer = None
    if status != "discarded" and verdict is not None:
        category = answer_value(values, CATEGORY_QUESTION)
        safety_layer = answer_value(values, SAFETY_LAYER_QUESTION)
        answer = ReviewAnswer(
            verdict=verdict,
            category=category if isinstance(category, str) else None,
            safety_layer=safety_layer if safety_layer in SAFETY_LAYER_LABELS else None,
            note=_text(answer_value(values, NOTE_QUESTION)),
            edited_content=_text(answer_value(values, EDITED_QUESTION)),
        )
    return ReviewResponse(
        item_id=str(item_id),
        annotator=annotator,
        status=status,
        answer=answer,
        responded_at=parse_time(response.get("updated_at") or response.get("inserted_at")),
        response_id=str(response.get("id", "")),
    )
