"""The trust-and-safety review queue: what the safety layer flagged, a reviewer's verdict on it,
and the training data the verdict becomes.

A verdict answers two questions, separately:

- the output: `serve` (it may be served; status "approved"), `withhold` (it must not be served;
  "rejected") or `edit` (serve the reviewer's correction instead; "edited");
- the safety layer: `right` (it was right to flag or escalate this) or `wrong` (a false alarm).

`category` says what the flagged content is ("safe" when nothing is wrong with it). Unsaid, the
safety layer follows from the output (serve: wrong; withhold, edit: right) and the category of
`serve` is "safe". Contradictions are refused (`InvalidInput`, 422): the layer right while the
content is "safe" (on a flagged item), the layer wrong while the content is a harm it catches,
serving what the category calls harmful, withholding or editing without saying what is wrong,
and serving what the layer rightly blocked. The old names `approve` and `reject` still work and
mean `serve` and `withhold`.

The verdict is final (a second one is a conflict), audited in the same transaction, and becomes
training data; an admin may `reopen` a mistaken verdict (audited): the item is pending again and
the training data it produced is withdrawn.

- preference pairs: an edit is a pair by itself (the edited content chosen over the original);
  a withheld output becomes the rejected side of a pair with every output of the same task a
  reviewer let serve or wrote, and a served output the chosen side against every withheld
  one. Rows: Task (the decision's prompt, kind "decision"), Candidate, Comparison, Label with
  source "reviewer";
- moderation examples for the local harm classifier, from the text moderation read: when the
  layer was wrong and moderation flagged it, a "safe" example; when the layer was right and the
  category is a harm label, an example of that category (and an edit's rewrite a "safe" one)
  (`moderation_examples`, `retrain_harm_classifier`). A legacy verdict that did not say whether the
  layer was right (see migration 0005) gives none.

What it does not do: create review items (the decision path does), or mirror them to Argilla
(`review_sync` does, and records Argilla answers through `decide`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from app.audit import append_audit
from app.errors import Conflict, InvalidInput, NotFound
from app.models import Candidate, Comparison, Decision, Label, ReviewItem, Task, utcnow
from app.services.labels.data_io import prompt_hash, text_hash
from app.settings import Settings
from policies.decision_types import DecisionType, deployment_decision_types
from reward_models.pairs import Message, PreferencePair
from safety.moderation import HarmClassifierArtifact, retrain
from safety.pii import redact_values

__all__ = [
    "CATEGORIES",
    "MODERATION_LABELS",
    "STATUSES",
    "VERDICTS",
    "SAFETY_LAYER",
    "VERDICT_HELP",
    "ReviewResult",
    "decide",
    "decision_types_for",
    "export_moderation_examples",
    "get_item",
    "harm_classifier_dir",
    "list_items",
    "moderation_examples",
    "reopen",
    "retrain_harm_classifier",
]

# Verdict on the output -> the status it gives the item.
VERDICTS: dict[str, str] = {"serve": "approved", "withhold": "rejected", "edit": "edited"}
LEGACY_VERDICTS: dict[str, str] = {"approve": "serve", "reject": "withhold"}  # old names, same meaning
VERDICT_HELP: dict[str, str] = {
    "serve": "the output may be served as it is",
    "withhold": "the output must not be served",
    "edit": "serve the corrected output given in edited_content instead",
}
SAFETY_LAYER: dict[str, str] = {
    "right": "the safety layer was right to flag or escalate it",
    "wrong": "the safety layer was wrong: a false alarm",
}
STATUSES = ("pending", "approved", "rejected", "edited")
KINDS = ("flagged", "escalated")
# Labels the local harm classifier learns ("safe" is its negative class).
MODERATION_LABELS = ("safe", "harassment", "hate", "illicit", "self-harm", "sexual", "violence")
# One taxonomy for every reviewer, so verdicts stay comparable and usable as training labels.
CATEGORIES = (
    *MODERATION_LABELS,
    "pii",
    "forbidden-terms",
    "links",
    "prompt-injection",
    "wrong-action",
    "quality",
    "other",
)
# What the safety layer itself catches: a flag for one of these was right.
SAFETY_CATEGORIES = tuple(c for c in CATEGORIES if c in MODERATION_LABELS[1:] or c in (
    "pii", "forbidden-terms", "links", "prompt-injection"))
HARMFUL = MODERATION_LABELS[1:]  # never servable as they are
_DECIDED = tuple(VERDICTS.values())


@dataclass
class ReviewResult:
    item: ReviewItem
    comparison_ids: list[str] = field(default_factory=list)
    moderation_examples: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "item": self.item.model_dump(mode="json"),
            "comparison_ids": self.comparison_ids,
            "moderation_examples": len(self.moderation_examples),
        }


# ---------------------------------------------------------------- queue


def list_items(
    session: Session,
    *,
    status: str | None = "pending",
    kind: str | None = None,
    decision_type: str | None = None,
    category: str | None = None,
    created_after: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[ReviewItem]:
    """Review items, oldest first (a queue). `status=None` lists every status."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"unknown status {status!r}; expected one of {', '.join(STATUSES)}")
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not 1 <= limit <= 1000 or offset < 0:
        raise InvalidInput("limit must be in 1..1000 and offset >= 0")
    query = select(ReviewItem)
    for column, value in (
        (ReviewItem.status, status),
        (ReviewItem.kind, kind),
        (ReviewItem.decision_type, decision_type),
        (ReviewItem.category, category),
    ):
        if value is not None:
            query = query.where(column == value)
    if created_after is not None:
        query = query.where(col(ReviewItem.created_at) > created_after)
    query = query.order_by(col(ReviewItem.created_at), col(ReviewItem.id)).offset(offset).limit(limit)
    return list(session.exec(query).all())


def get_item(session: Session, item_id: str) -> ReviewItem:
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFound(f"no review item {item_id!r}")
    return item


# ---------------------------------------------------------------- verdicts


def _check_verdict(verdict: str, safety_layer: str, category: str, item: ReviewItem,
                   decision: Decision | None) -> None:
    """Refuse a verdict that contradicts itself (see the module docstring)."""
    if verdict == "serve" and category in HARMFUL:
        raise InvalidInput(f"contradiction: 'serve' lets the output be served, category {category!r} says it is "
                           "harmful; if the block was right, the verdict is 'withhold' with safety_layer 'right'")
    if safety_layer == "right" and category == "safe" and item.kind == "flagged":
        raise InvalidInput("contradiction: safety_layer 'right' says the flag was deserved, category 'safe' says "
                           "the content is harmless; use safety_layer 'wrong', or the category of what it caught")
    if safety_layer == "wrong" and category in SAFETY_CATEGORIES:
        raise InvalidInput(f"contradiction: safety_layer 'wrong' says the flag was a false alarm, category "
                           f"{category!r} says the layer caught something real; use safety_layer 'right'")
    if verdict != "serve" and category == "safe":
        raise InvalidInput(f"{verdict!r} needs a category saying what is wrong (not 'safe')")
    if verdict == "serve" and safety_layer == "right" and decision is not None and decision.safety_verdict == "block":
        raise InvalidInput("contradiction: the safety layer blocked this and safety_layer 'right' says the block "
                           "was deserved, so the output may not be served; the verdict is 'withhold'")


def decide(
    session: Session,
    item_id: str,
    verdict: str,
    *,
    reviewer: str,
    category: str | None = None,
    note: str | None = None,
    edited_content: str | None = None,
    safety_layer: str | None = None,
    decision_types: Mapping[str, DecisionType] | None = None,
) -> ReviewResult:
    """Record a verdict, in the caller's transaction, and derive the training data from it.

    `verdict` is serve | withhold | edit (or the old approve | reject); `safety_layer` right | wrong
    defaults from it (serve: wrong, otherwise right). `category` defaults to "safe" for serve and
    is required otherwise; `edited_content` is required for, and only allowed with, an edit.
    `decision_types` render the task prompt of new training pairs (default: the shipped ones).
    """
    verdict = LEGACY_VERDICTS.get(verdict, verdict)
    if verdict not in VERDICTS:
        raise InvalidInput(f"unknown verdict {verdict!r}; expected one of {', '.join(VERDICTS)} "
                           f"(or the old names {', '.join(LEGACY_VERDICTS)})")
    if safety_layer is not None and safety_layer not in SAFETY_LAYER:
        raise InvalidInput(f"safety_layer must be one of {', '.join(SAFETY_LAYER)}; got {safety_layer!r}")
    if category is None and verdict == "serve" and safety_layer != "right":
        category = "safe"
    if category not in CATEGORIES:
        raise InvalidInput(f"category must be one of {', '.join(CATEGORIES)}; got {category!r}")
    if (verdict == "edit") != bool(edited_content and edited_content.strip()):
        raise InvalidInput("an edit needs edited_content, and only an edit takes it")
    safety_layer = safety_layer or ("wrong" if verdict == "serve" else "right")
    item = get_item(session, item_id)
    decision = session.get(Decision, item.decision_id) if item.decision_id else None
    if item.status == "pending":
        _check_verdict(verdict, safety_layer, category, item, decision)
    # Conditional update: of two reviewers deciding at once, exactly one wins.
    won = session.exec(
        update(ReviewItem)
        .where(col(ReviewItem.id) == item_id, col(ReviewItem.status) == "pending")
        .values(
            status=VERDICTS[verdict],
            safety_layer=safety_layer,
            category=category,
            # A reviewer's note and rewrite are stored (and become labels) without personal data too.
            note=redact_values(note),
            edited_content=redact_values(edited_content),
            reviewer=reviewer,
            decided_at=utcnow(),
        )
    )
    if won.rowcount != 1:
        session.refresh(item)
        raise Conflict(f"review item {item_id!r} was already decided ({item.status} by {item.reviewer})")
    session.refresh(item)
    comparisons = _preference_pairs(session, item, decision, decision_types)
    examples = _item_examples(item, decision)
    append_audit(
        session,
        reviewer,
        "review.decided",
        "review_item",
        item.id,
        {
            "verdict": verdict,
            "safety_layer": safety_layer,
            "category": category,
            "note": note,
            "decision_id": item.decision_id,
            "edited": edited_content is not None,
            "comparisons": comparisons,
            "moderation_examples": len(examples),
        },
    )
    return ReviewResult(item, comparisons, examples)


def reopen(session: Session, item_id: str, *, actor: str, reason: str) -> ReviewItem:
    """Undo a mistaken verdict (an admin's call, in the caller's transaction): the item is pending again,
    the preference labels the verdict wrote are deleted (its moderation examples are derived from decided
    items, so they go too), and the audit entry keeps what the verdict was. A harm classifier already
    retrained on it stays as it is (artifacts are versioned); retrain to drop the example.
    """
    if not (reason or "").strip():
        raise InvalidInput("reopening a verdict needs a reason (it is audited)")
    item = get_item(session, item_id)
    if item.status == "pending":
        raise Conflict(f"review item {item_id!r} has no verdict to reopen (it is pending)")
    previous = {
        "status": item.status,
        "safety_layer": item.safety_layer,
        "category": item.category,
        "note": item.note,
        "reviewer": item.reviewer,
        "edited": item.edited_content is not None,
        "decided_at": item.decided_at.isoformat() if item.decided_at else None,
    }
    labels = [
        label
        for label in session.exec(
            select(Label).where(Label.source == "reviewer", Label.producer == (item.reviewer or "reviewer"))
        ).all()
        if (label.details or {}).get("review_item_id") == item.id
    ]
    for label in labels:
        session.delete(label)
    item.status, item.safety_layer, item.category, item.note = "pending", None, None, None
    item.edited_content, item.reviewer, item.decided_at = None, None, None
    item.reopened_at = utcnow()
    session.add(item)
    session.flush()
    append_audit(
        session,
        actor,
        "review.reopened",
        "review_item",
        item.id,
        {"reason": reason, "previous": previous, "labels_deleted": [label.id for label in labels]},
    )
    return item


def decision_types_for(settings: Settings) -> dict[str, DecisionType]:
    """The shipped decision types plus `ARBITER_DECISION_TYPES_DIR` (loaded once per directory)."""
    return deployment_decision_types(settings.decision_types_dir)


def _task_for(session: Session, item: ReviewItem, decision_types: Mapping[str, DecisionType] | None) -> Task:
    decision_types = decision_types if decision_types is not None else deployment_decision_types()
    dt = decision_types.get(item.decision_type or "")
    if dt is not None:
        messages = dt.messages(item.context, validate=False)
    else:  # an unknown type still gets a task: the context itself is the prompt
        messages = [{"role": "user", "content": json.dumps(item.context, sort_keys=True, ensure_ascii=False)}]
    digest = prompt_hash(messages, kind="decision", decision_type=item.decision_type, context=item.context)
    task = session.exec(select(Task).where(Task.content_hash == digest)).first()
    if task is None:
        task = Task(
            kind="decision",
            decision_type=item.decision_type,
            prompt=messages,
            context=item.context,
            content_hash=digest,
            source="review",
            source_format="conversational",
        )
        session.add(task)
        session.flush()
    return task


def _proposal(decision: Decision | None) -> str | None:
    """What the policy proposed: the text it drafted, or the action it chose."""
    if decision is None:
        return None
    return decision.proposed_output if decision.proposed_output is not None else decision.proposed_action


def _sides(item: ReviewItem, proposal: str) -> tuple[list[str], list[str]]:
    """(good, bad) contents a decided item contributes to its task."""
    if item.status == "approved":
        return [proposal], []
    if item.status == "rejected":
        return [], [proposal]
    return [item.edited_content or ""], [proposal]


def _candidate(session: Session, task: Task, content: str, produced_by: str) -> Candidate:
    digest = text_hash(content)
    found = session.exec(
        select(Candidate).where(Candidate.task_id == task.id, Candidate.content_hash == digest)
    ).first()
    if found is None:
        found = Candidate(task_id=task.id, content=content, produced_by=produced_by, content_hash=digest)
        session.add(found)
        session.flush()
    return found


def _preference_pairs(
    session: Session,
    item: ReviewItem,
    decision: Decision | None,
    decision_types: Mapping[str, DecisionType] | None,
) -> list[str]:
    """Comparisons (chosen = a) between this item's contents and earlier verdicts on the same task."""
    proposal = _proposal(decision)
    if proposal is None:
        return []  # blocked before the policy proposed anything: nothing to prefer
    good, bad = _sides(item, proposal)
    # Earlier verdicts on the same decision context pair up with this one.
    context_key = json.dumps(item.context, sort_keys=True, default=str)
    earlier = session.exec(
        select(ReviewItem, Decision)
        .join(Decision, col(Decision.id) == col(ReviewItem.decision_id))
        .where(
            ReviewItem.decision_type == item.decision_type,
            col(ReviewItem.status).in_(_DECIDED),
            ReviewItem.id != item.id,
        )
    ).all()
    old_good: list[str] = []
    old_bad: list[str] = []
    for other, other_decision in earlier:
        other_proposal = _proposal(other_decision)
        if other_proposal is None or json.dumps(other.context, sort_keys=True, default=str) != context_key:
            continue
        g, b = _sides(other, other_proposal)
        old_good += g
        old_bad += b
    pairs = [(g, b) for g in good for b in bad + old_bad] + [(g, b) for g in old_good for b in bad]
    pairs = list(dict.fromkeys((g, b) for g, b in pairs if g != b and g and b))
    if not pairs:
        return []
    task = _task_for(session, item, decision_types)
    prompt = tuple(Message(m["role"], m["content"]) for m in task.prompt)
    policy = f"policy:{decision.policy_version_id}" if decision and decision.policy_version_id else "policy"
    created = []
    for chosen, rejected in pairs:
        producer = f"reviewer:{item.reviewer}" if chosen == item.edited_content else policy
        a = _candidate(session, task, chosen, producer)
        b = _candidate(session, task, rejected, policy)
        pair_hash = PreferencePair(prompt, chosen, rejected, "conversational").content_hash()
        comparison = session.exec(select(Comparison).where(Comparison.pair_hash == pair_hash)).first()
        if comparison is None:
            comparison = Comparison(
                task_id=task.id,
                candidate_a_id=a.id,
                candidate_b_id=b.id,
                pair_hash=pair_hash,
                source="reviewer",
            )
            session.add(comparison)
            session.flush()
        # The pair may exist with the sides the other way round (imported data): label what is a/b.
        choice = "a" if comparison.candidate_a_id == a.id else "b"
        exists = session.exec(
            select(Label).where(
                Label.comparison_id == comparison.id,
                Label.source == "reviewer",
                Label.producer == item.reviewer,
            )
        ).first()
        if exists is None:
            session.add(
                Label(
                    comparison_id=comparison.id,
                    choice=choice,
                    source="reviewer",
                    producer=item.reviewer or "reviewer",
                    rationale=item.note or "",
                    details={"review_item_id": item.id, "category": item.category},
                )
            )
            created.append(comparison.id)
    session.flush()
    return created


# ---------------------------------------------------------------- moderation examples


def _moderated_text(item: ReviewItem, decision: Decision | None) -> tuple[str | None, bool]:
    """The text moderation read for this item (output before input) and whether it flagged it.

    The verdicts' `text` is already redacted, so personal data never enters the training set.
    """
    details = decision.safety_details if decision is not None else {}
    verdicts = [
        v for v in (details.get("output"), details.get("input")) if isinstance(v, dict) and v.get("text")
    ]
    for verdict in verdicts:
        if any(r.get("source") == "moderation" for r in verdict.get("reasons", [])):
            return verdict["text"], True
    if verdicts:
        return verdicts[0]["text"], False
    return (item.content or None), any(r.get("source") == "moderation" for r in item.reasons or [])


def _item_examples(item: ReviewItem, decision: Decision | None) -> list[tuple[str, str]]:
    text, flagged = _moderated_text(item, decision)
    if not text:
        return []
    if item.safety_layer == "wrong":
        # A false alarm on what moderation flagged corrects a false positive: the most useful example.
        return [(text, "safe")] if flagged else []
    if item.safety_layer != "right" or item.category not in HARMFUL:
        # A legacy verdict that did not say (see migration 0005), or a reason the harm classifier does not
        # learn (PII, wrong action, ...).
        return []
    examples = [(text, item.category)]
    if item.status == "edited" and decision is not None and decision.proposed_output is not None:
        examples.append((item.edited_content or "", "safe"))  # the reviewer's rewrite is harmless
    return [(t, label) for t, label in examples if t.strip()]


def moderation_examples(session: Session, decision_type: str | None = None) -> list[tuple[str, str]]:
    """(text, label) examples from every decided review item, oldest first."""
    query = (
        select(ReviewItem, Decision)
        .join(Decision, col(Decision.id) == col(ReviewItem.decision_id), isouter=True)
        .where(col(ReviewItem.status).in_(_DECIDED))
        .order_by(col(ReviewItem.decided_at), col(ReviewItem.id))
    )
    if decision_type is not None:
        query = query.where(ReviewItem.decision_type == decision_type)
    examples: list[tuple[str, str]] = []
    for item, decision in session.exec(query).all():
        examples.extend(_item_examples(item, decision))
    return list(dict.fromkeys(examples))


def export_moderation_examples(session: Session, path: str | Path) -> int:
    """Write the examples as JSONL ({"text", "label"}); returns how many."""
    examples = moderation_examples(session)
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(
            json.dumps({"text": t, "label": label}, ensure_ascii=False) + "\n" for t, label in examples
        )
    tmp.replace(path)
    return len(examples)


def harm_classifier_dir(settings: Settings) -> Path:
    """Where the versioned harm classifier artifacts live (`safety.moderation.latest_artifact`)."""
    return settings.artifacts_dir / "harm-classifier"


def retrain_harm_classifier(session: Session, artifacts_dir: Path, actor: str) -> HarmClassifierArtifact:
    """Retrain the local harm classifier on the seed set plus every reviewer example, save it as a
    new version and audit it. A running safety layer picks it up when it is next built."""
    examples = moderation_examples(session)
    if not examples:
        raise InvalidInput("no reviewer verdicts usable as moderation examples yet; nothing to retrain on")
    artifact = retrain(examples, Path(artifacts_dir))
    append_audit(
        session,
        actor,
        "safety.harm_classifier.retrained",
        "harm_classifier",
        f"v{artifact.version}",
        {
            "path": artifact.path,
            "n_examples": artifact.n_examples,
            "n_reviewer_examples": artifact.n_new_examples,
            "labels": list(artifact.labels),
            "training_sha256": artifact.training_sha256,
        },
    )
    return artifact
