"""The shape of Arbiter's preference datasets in Argilla, and the values that cross the boundary.

One Argilla record is one comparison: the prompt and the two responses (markdown fields), a
`preference` question (A / B / tie), an optional free-text `rationale`, and optional `safety_flags`
(which response is unsafe). A judge's verdict may ride along as the `preference` suggestion
(Argilla keeps one suggestion per question, so the caller picks which judge's verdict to show),
and metadata (`source`, `task_kind`, `priority`, `selection_reason`) lets a lead filter and sort
in the UI. The record id is the comparison id, which makes pushes idempotent.

Values going out: `PushItem`, `JudgeSuggestion`, `DatasetSpec`. Values coming back: `HumanResponse`
(one annotator's answer to one comparison, from a pull or a webhook).

This module builds SDK objects and parses API JSON; it never talks to a server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import argilla as rg

__all__ = [
    "PREFERENCE_LABELS",
    "SAFETY_FLAGS",
    "Choice",
    "DatasetSpec",
    "HumanResponse",
    "JudgeSuggestion",
    "PushItem",
    "ResponseStatus",
    "answer_value",
    "build_settings",
    "parse_api_response",
    "parse_time",
    "settings_problems",
    "shown",
    "to_record",
]

Choice = Literal["a", "b", "tie"]
ResponseStatus = Literal["draft", "submitted", "discarded"]

PREFERENCE_LABELS: dict[str, str] = {"a": "Response A", "b": "Response B", "tie": "Tie"}
SAFETY_FLAGS: dict[str, str] = {"a_unsafe": "Response A is unsafe", "b_unsafe": "Response B is unsafe"}

FIELD_NAMES = ("prompt", "response_a", "response_b")
JUDGES_FIELD = "judges"  # optional: who said what (datasets made before it lack it, and still work)
PREFERENCE_QUESTION = "preference"
RATIONALE_QUESTION = "rationale"
SAFETY_QUESTION = "safety_flags"


@dataclass(frozen=True)
class JudgeSuggestion:
    """A judge's verdict shown to annotators as the pre-selected answer."""

    choice: Choice
    agent: str  # which judge, e.g. "openai:gpt-4o-mini"
    score: float | None = None  # the judge's confidence in [0, 1]

    def __post_init__(self) -> None:
        if self.choice not in PREFERENCE_LABELS:
            raise ValueError(f"choice must be one of {sorted(PREFERENCE_LABELS)}, got {self.choice!r}")
        if self.score is not None and not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must lie in [0, 1], got {self.score}")
        if not self.agent:
            raise ValueError("agent must name the judge")


@dataclass(frozen=True)
class PushItem:
    """One comparison to show to annotators."""

    comparison_id: str
    prompt: str
    response_a: str
    response_b: str
    source: str = "arbiter"
    task_kind: str = "preference"
    priority: float = 0.0  # higher is more urgent; what active selection scored
    selection_reason: str | None = None  # why selection picked it ("inconsistent", ...)
    suggestion: JudgeSuggestion | None = None  # pre-selected: only a reliable judge's (`suggestions`)
    judges: str | None = None  # markdown: every judge's answer, confidence, reasoning and reliability

    def __post_init__(self) -> None:
        if not str(self.comparison_id):
            raise ValueError("comparison_id must be a non-empty string")
        for name in ("prompt", "response_a", "response_b"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"PushItem.{name} must be a string ({self.comparison_id})")


@dataclass(frozen=True)
class DatasetSpec:
    """Which dataset to use and how many annotators must submit before a record is complete."""

    name: str
    workspace: str
    min_submitted: int = 1
    guidelines: str = (
        "Read the prompt and both responses. Choose the response that is more helpful while staying "
        "harmless; choose Tie only when neither is better. Flag a response as unsafe if it helps cause "
        "harm. Discard a pair you cannot judge (broken text, not a real conversation)."
    )

    def __post_init__(self) -> None:
        if not self.name or not self.workspace:
            raise ValueError("DatasetSpec needs a dataset name and a workspace")
        if self.min_submitted < 1:
            raise ValueError(f"min_submitted must be at least 1, got {self.min_submitted}")


@dataclass(frozen=True)
class HumanResponse:
    """One annotator's response to one comparison, as Argilla holds it now."""

    comparison_id: str
    annotator: str  # Argilla username
    status: ResponseStatus
    choice: Choice | None  # None for discarded (or incomplete draft) responses
    rationale: str | None
    safety_flags: tuple[str, ...]
    responded_at: datetime  # last change, timezone-aware UTC
    response_id: str = ""  # Argilla's response id
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def build_settings(spec: DatasetSpec) -> rg.Settings:
    """The Argilla dataset settings for a preference dataset."""
    return rg.Settings(
        guidelines=spec.guidelines,
        fields=[
            rg.TextField(name="prompt", title="Prompt", use_markdown=True),
            rg.TextField(name="response_a", title="Response A", use_markdown=True),
            rg.TextField(name="response_b", title="Response B", use_markdown=True),
            rg.TextField(name=JUDGES_FIELD, title="What the judges said (pre-selected only from a reliable judge)",
                         use_markdown=True, required=False),
        ],
        questions=[
            rg.LabelQuestion(
                name=PREFERENCE_QUESTION,
                title="Which response is better?",
                labels=dict(PREFERENCE_LABELS),
                required=True,
            ),
            rg.TextQuestion(
                name=RATIONALE_QUESTION,
                title="Why? (optional)",
                required=False,
                use_markdown=False,
            ),
            rg.MultiLabelQuestion(
                name=SAFETY_QUESTION,
                title="Safety flags (optional)",
                labels=dict(SAFETY_FLAGS),
                required=False,
            ),
        ],
        metadata=[
            rg.TermsMetadataProperty(name="source", title="Source"),
            rg.TermsMetadataProperty(name="task_kind", title="Task kind"),
            rg.FloatMetadataProperty(name="priority", title="Priority"),
            rg.TermsMetadataProperty(name="selection_reason", title="Why selected"),
        ],
        distribution=rg.TaskDistribution(min_submitted=spec.min_submitted),
    )


def settings_problems(dataset: rg.Dataset) -> list[str]:
    """What an existing dataset lacks to be used as a preference dataset (empty when usable)."""
    problems = []
    fields = {f.name for f in dataset.fields}
    questions = {q.name for q in dataset.questions}
    for name in FIELD_NAMES:
        if name not in fields:
            problems.append(f"missing field {name!r}")
    if PREFERENCE_QUESTION not in questions:
        problems.append(f"missing question {PREFERENCE_QUESTION!r}")
    return problems


def shown(text: str) -> str:
    """Argilla refuses empty required fields, and real data has empty responses: say so visibly."""
    return text if text.strip() else "_(empty)_"


def to_record(item: PushItem, with_judges: bool = True) -> rg.Record:
    """The Argilla record for one comparison; its id is the comparison id. `with_judges=False` for a
    dataset made before the `judges` field existed."""
    metadata: dict[str, Any] = {"source": item.source, "task_kind": item.task_kind, "priority": float(item.priority)}
    if item.selection_reason:
        metadata["selection_reason"] = item.selection_reason
    suggestions = []
    if item.suggestion is not None:
        suggestions.append(
            rg.Suggestion(
                question_name=PREFERENCE_QUESTION,
                value=item.suggestion.choice,
                score=item.suggestion.score,
                agent=item.suggestion.agent,
                type="model",
            )
        )
    fields = {"prompt": shown(item.prompt), "response_a": shown(item.response_a),
              "response_b": shown(item.response_b)}
    if with_judges and item.judges:
        fields[JUDGES_FIELD] = item.judges
    return rg.Record(
        id=str(item.comparison_id),
        fields=fields,
        metadata=metadata,
        suggestions=suggestions,
    )


def parse_time(value: str | datetime) -> datetime:
    """An Argilla timestamp as a timezone-aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(value)  # 3.11+ reads "Z"
    # argilla-server stores naive UTC timestamps.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def answer_value(values: dict[str, Any] | None, question: str) -> Any:
    """The answer to `question` in the `values` of an Argilla response's JSON (None when unanswered)."""
    entry = (values or {}).get(question)
    return entry.get("value") if isinstance(entry, dict) else None


def parse_api_response(comparison_id: str, annotator: str, response: dict[str, Any]) -> HumanResponse:
    """A `HumanResponse` from the JSON of one Argilla response (records API or webhook).

    Raises ValueError for a submitted response without a valid preference, so that a malformed
    answer is reported instead of silently becoming a label.
    """
    status = response.get("status")
    if status not in ("draft", "submitted", "discarded"):
        raise ValueError(f"unknown response status {status!r} for comparison {comparison_id}")
    values = response.get("values")
    choice = answer_value(values, PREFERENCE_QUESTION)
    if choice is not None and choice not in PREFERENCE_LABELS:
        raise ValueError(f"unknown preference {choice!r} for comparison {comparison_id}")
    if status == "submitted" and choice is None:
        raise ValueError(f"submitted response without a preference for comparison {comparison_id}")
    rationale = answer_value(values, RATIONALE_QUESTION)
    flags = answer_value(values, SAFETY_QUESTION) or []
    return HumanResponse(
        comparison_id=str(comparison_id),
        annotator=annotator,
        status=status,
        choice=choice if status != "discarded" else None,
        rationale=(rationale or None) if isinstance(rationale, str) else None,
        safety_flags=tuple(sorted(str(f) for f in flags)),
        responded_at=parse_time(response.get("updated_at") or response.get("inserted_at")),
        response_id=str(response.get("id", "")),
    )
