"""Combining moderation results and rule hits into one verdict.

Outcomes, from most to least severe (the most severe reason wins):

    block     nothing goes out: a forbidden term, a length limit, high-confidence harmful content
    escalate  a human decides before anything goes out: a rule asks for review, content was
              flagged with moderate confidence, a rule could not be evaluated, or every action
              was masked
    mask      the proposed action is not allowed: pick another from `allowed_actions` (before the
              policy acts this is routine: some actions are simply unavailable)
    redact    deliverable once `text` (already redacted) replaces the original
    allow     nothing to do

Whatever the outcome, the verdict carries everything any reason produced (redacted text, masked
actions), so a reviewer sees all of it. `ModerationPolicy` decides how a moderation flag maps to an
outcome. Text in a language no deciding moderation provider covers gets a "language-uncovered"
reason whose outcome the rule set chose (`uncovered_language`: escalate, block, or mark = allow,
recorded), and the verdict carries the coverage either way. This module does not run providers
or rules; `safety.layer` does and calls `combine`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from safety.language import Coverage
from safety.moderation.base import ModerationResult
from safety.moderation.chain import ModerationReport
from safety.pii import Span, apply_redactions
from safety.rules import RuleHit

__all__ = [
    "SEVERITY",
    "ModerationPolicy",
    "Outcome",
    "Reason",
    "Verdict",
    "combine",
    "coverage_reason",
    "most_severe",
]


class Outcome(StrEnum):
    ALLOW = "allow"
    REDACT = "redact"
    MASK = "mask"
    ESCALATE = "escalate"
    BLOCK = "block"


SEVERITY: dict[Outcome, int] = {
    Outcome.ALLOW: 0,
    Outcome.REDACT: 1,
    Outcome.MASK: 2,
    Outcome.ESCALATE: 3,
    Outcome.BLOCK: 4,
}


def most_severe(outcomes: Iterable[Outcome]) -> Outcome:
    return max(outcomes, key=SEVERITY.__getitem__, default=Outcome.ALLOW)


@dataclass(frozen=True)
class ModerationPolicy:
    """How a provider's flag becomes an outcome.

    A flagged category escalates; it blocks when its score reaches `block_at`, unless the
    category is in `escalate_only` (profanity is rude, not harmful: a reviewer should look,
    but it alone never blocks). Categories in `ignore` produce no reason at all, and neither do
    those in `ignore_on_input` when checking what a user wrote (customers swear at support; what
    must stay clean is what Arbiter says back).
    """

    block_at: float = 0.9
    escalate_only: frozenset[str] = frozenset({"profanity"})
    ignore: frozenset[str] = frozenset()
    ignore_on_input: frozenset[str] = frozenset({"profanity"})

    def __post_init__(self) -> None:
        if not 0.0 < self.block_at <= 1.0:
            raise ValueError(f"block_at must be in (0, 1], got {self.block_at}")

    def outcome(self, category: str, score: float, stage: str = "output") -> Outcome | None:
        if category in self.ignore or (stage == "input" and category in self.ignore_on_input):
            return None
        if score >= self.block_at and category not in self.escalate_only:
            return Outcome.BLOCK
        return Outcome.ESCALATE


@dataclass(frozen=True)
class Reason:
    """One reason behind a verdict.

    `source` is "rule" (code = rule id), "moderation" (code = "provider:category", with the
    provider, category and score) or "safety" (the layer itself: code "action-masked",
    "no-allowed-action", "unknown-action", "rule-error", "moderation-unavailable",
    "language-uncovered").
    """

    source: str
    code: str
    outcome: Outcome
    message: str = ""
    provider: str | None = None
    category: str | None = None
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "code": self.code,
            "outcome": self.outcome.value,
            "message": self.message,
            "provider": self.provider,
            "category": self.category,
            "score": self.score,
        }


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    stage: str  # "input" (before the policy acts) or "output" (on what it proposed)
    decision_type: str
    reasons: tuple[Reason, ...] = ()
    text: str | None = None  # the checked text after redaction (None when no text was checked)
    redactions: tuple[Span, ...] = ()  # spans of the original text that were replaced
    action: str | None = None  # the proposed action that was checked (output stage)
    masked_actions: tuple[str, ...] = ()
    allowed_actions: tuple[str, ...] = ()
    ruleset_name: str | None = None
    ruleset_hash: str | None = None
    moderation: tuple[ModerationResult, ...] = ()
    moderation_decided_by: tuple[str, ...] = ()
    fallback: bool = False  # the primary moderation provider failed and a local one decided
    fell_back_from: tuple[tuple[str, str], ...] = ()  # (provider, error kind) of each moderation provider that failed
    errors: tuple[str, ...] = ()
    coverage: Coverage | None = None  # the checked text's language and whether moderation covers it

    @property
    def needs_review(self) -> bool:
        """Whether a reviewer must see this. Blocks and escalations always; on the output side
        also redactions and masked proposals (the policy produced something it must not). On the
        input side masks and redactions are routine (a team is full; a customer wrote their
        e-mail address) and are handled without a reviewer."""
        if self.outcome in (Outcome.BLOCK, Outcome.ESCALATE):
            return True
        return self.stage == "output" and self.outcome in (Outcome.REDACT, Outcome.MASK)

    @property
    def deliverable(self) -> bool:
        """Whether `text` / `action` may go out without a human (after redaction)."""
        return self.outcome in (Outcome.ALLOW, Outcome.REDACT)

    def rule_ids(self) -> list[str]:
        return [r.code for r in self.reasons if r.source == "rule"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "stage": self.stage,
            "decision_type": self.decision_type,
            "needs_review": self.needs_review,
            "reasons": [r.to_dict() for r in self.reasons],
            "text": self.text,
            "redactions": [{"start": s.start, "end": s.end, "label": s.label} for s in self.redactions],
            "action": self.action,
            "masked_actions": list(self.masked_actions),
            "allowed_actions": list(self.allowed_actions),
            "ruleset_name": self.ruleset_name,
            "ruleset_hash": self.ruleset_hash,
            "moderation": [m.to_dict() for m in self.moderation],
            "moderation_decided_by": list(self.moderation_decided_by),
            "fallback": self.fallback,
            "errors": list(self.errors),
            "language_coverage": self.coverage.to_dict() if self.coverage else None,
        }


_EFFECT_OUTCOME = {
    "block": Outcome.BLOCK,
    "escalate": Outcome.ESCALATE,
    "redact": Outcome.REDACT,
    "mask": Outcome.MASK,
}


def moderation_reasons(report: ModerationReport, policy: ModerationPolicy, stage: str) -> list[Reason]:
    reasons = []
    for result in report.results:
        for category in result.categories:
            score = result.scores.get(category, 1.0)
            outcome = policy.outcome(category, score, stage)
            if outcome is not None:
                reasons.append(
                    Reason(
                        "moderation",
                        f"{result.provider}:{category}",
                        outcome,
                        f"{result.provider} flagged {category} ({score:.2f})",
                        provider=result.provider,
                        category=category,
                        score=score,
                    )
                )
    return reasons


_UNCOVERED_OUTCOME = {"escalate": Outcome.ESCALATE, "block": Outcome.BLOCK, "mark": Outcome.ALLOW}


def coverage_reason(coverage: Coverage | None, uncovered_language: str = "escalate") -> Reason | None:
    """The reason an uncovered language gives (None when the text is covered or undetermined).
    `uncovered_language` is the rule set's choice; "mark" keeps the outcome but records the reason."""
    if coverage is None or not coverage.uncovered:
        return None
    what = "part of the text is" if coverage.status == "partial" else "the text is"
    return Reason(
        "safety",
        "language-uncovered",
        _UNCOVERED_OUTCOME[uncovered_language],
        f"{what} in {coverage.language!r}, which no moderation provider that decided covers "
        f"(coverage: {coverage.status})",
    )


def combine(
    *,
    stage: str,
    decision_type: str,
    rule_hits: Sequence[RuleHit] = (),
    moderation: ModerationReport | None = None,
    policy: ModerationPolicy | None = None,
    text: str | None = None,
    action: str | None = None,
    masked_actions: Sequence[str] = (),
    allowed_actions: Sequence[str] = (),
    extra_reasons: Sequence[Reason] = (),
    ruleset_name: str | None = None,
    ruleset_hash: str | None = None,
    errors: Sequence[str] = (),
    uncovered_language: str = "escalate",
) -> Verdict:
    """One verdict from everything the layer found. The outcome is the most severe reason's."""
    reasons = [Reason("rule", hit.rule_id, _EFFECT_OUTCOME[hit.effect], hit.message) for hit in rule_hits]
    if moderation is not None:
        reasons.extend(moderation_reasons(moderation, policy or ModerationPolicy(), stage))
        uncovered = coverage_reason(moderation.coverage, uncovered_language)
        if uncovered is not None:
            reasons.append(uncovered)
    reasons.extend(extra_reasons)
    spans = tuple(sorted({s for hit in rule_hits if hit.effect == "redact" for s in hit.spans}))
    redacted = apply_redactions(text, spans) if text is not None and spans else text
    return Verdict(
        outcome=most_severe(r.outcome for r in reasons),
        stage=stage,
        decision_type=decision_type,
        reasons=tuple(reasons),
        text=redacted,
        redactions=spans,
        action=action,
        masked_actions=tuple(masked_actions),
        allowed_actions=tuple(allowed_actions),
        ruleset_name=ruleset_name,
        ruleset_hash=ruleset_hash,
        moderation=moderation.results if moderation else (),
        moderation_decided_by=moderation.decided_by if moderation else (),
        fallback=moderation.fallback if moderation else False,
        fell_back_from=moderation.fell_back_from if moderation else (),
        errors=tuple(errors) + (moderation.errors if moderation else ()),
        coverage=moderation.coverage if moderation else None,
    )
