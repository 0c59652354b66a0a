"""The safety layer: moderation providers + rule sets, in front of every decision.

`SafetyLayer` has three entry points, all taking and returning plain values:

- `allowed_actions(...)`: before the policy acts, the actions the rules leave it (masks only);
- `check_input(...)`: before the policy acts, the full input check: masks, input-stage rules on
  the context and the user's text (e.g. redacting personal data from a prompt), moderation of
  that text (injection, jailbreak, harm);
- `check_output(...)` / `check_outputs(...)`: after the policy proposed an action and/or text:
  output-stage rules, moderation of the text, and whether the proposed action was masked.

The layer fails closed: a rule that cannot be evaluated, or moderation with every harm provider
down, escalates to a human instead of letting the output through; text in a language no harm
provider that decided covers gets what the rule set's `uncovered_language` says (escalate by
default), never a silent allow. It holds no state between calls, so one instance serves
concurrent requests. It does not persist anything or queue review items; the app does that with
`Verdict.needs_review`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safety.language import default_language_detector
from safety.moderation.base import ModerationProvider, ProviderError
from safety.moderation.chain import ModerationReport, Moderator
from safety.moderation.guard import GuardModeration, GuardModerationConfig
from safety.moderation.harm_classifier import load_harm_classifier
from safety.moderation.harm_model import LocalModeration
from safety.moderation.injection import InjectionHeuristics
from safety.moderation.openai_api import OpenAIModeration, OpenAIModerationConfig
from safety.moderation.profanity import ProfanityModeration
from safety.pii import Span, apply_redactions, redact_pii
from safety.rules import (
    RuleEvaluationError,
    RuleHit,
    RuleSet,
    build_scope,
    evaluate_rules,
    load_rulesets,
    shipped_rulesets,
)
from safety.verdict import ModerationPolicy, Outcome, Reason, Verdict, combine

__all__ = ["Check", "SafetyLayer", "UnknownDecisionType", "default_moderator"]

DEFAULT_POLICY = ModerationPolicy()


class UnknownDecisionType(KeyError):
    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True)
class Check:
    """One item to check: the decision context, the candidate actions, the proposed action and text.

    `text` is the user's text for an input check and the generated text for an output check;
    `input_text` is the user's text when checking an output (rules may refer to `input.text`).
    """

    context: Mapping[str, Any] = field(default_factory=dict)
    actions: Sequence[str] = ()
    action: str | None = None
    text: str | None = None
    input_text: str | None = None


@dataclass
class _Findings:
    """What the rules found for one check, before moderation."""

    hits: list[RuleHit]
    extra: list[Reason]
    masked: tuple[str, ...] = ()
    allowed: tuple[str, ...] = ()

    @property
    def spans(self) -> list[Span]:
        return [s for hit in self.hits if hit.effect == "redact" for s in hit.spans]


def default_moderator(
    openai: OpenAIModerationConfig | None = None,
    harm_classifier_path: Path | None = None,
    guard: GuardModerationConfig | None = None,
    remote_order: Sequence[str] = ("guard", "openai"),
) -> Moderator:
    """The remote providers that are configured (a guard model, OpenAI) in `remote_order`, with the
    local moderation model (plus the reviewer-retrained harm classifier when one was saved) and
    profanity as fallback, plus the injection heuristics, and language coverage (lingua, shared per
    process)."""
    # The shipped model trained on public data always answers; a classifier retrained from reviewer
    # verdicts adds what reviewers taught it, it does not replace the model.
    harm: list[ModerationProvider] = [LocalModeration()]
    if harm_classifier_path:
        harm.append(load_harm_classifier(harm_classifier_path))
    remote = {
        "guard": GuardModeration(guard) if guard else None,
        "openai": OpenAIModeration(openai) if openai else None,
    }
    unknown = [name for name in remote_order if name not in remote]
    if unknown:
        raise ValueError(f"unknown remote moderation providers {unknown}; known: {', '.join(remote)}")
    return Moderator(
        primary=[remote[name] for name in remote_order if remote[name] is not None],
        fallback=[*harm, ProfanityModeration()],
        detectors=[InjectionHeuristics()],
        language=default_language_detector(),
    )


class SafetyLayer:
    """Moderation + hard rules -> one verdict per check.

    Example:
        >>> layer = SafetyLayer.build()
        >>> layer.check_output("content", text="write to jo@example.com").text
        'write to [EMAIL]'
    """

    def __init__(
        self,
        rulesets: Mapping[str, RuleSet],
        moderator: Moderator | None,
        policy: ModerationPolicy = DEFAULT_POLICY,
    ) -> None:
        self.rulesets = dict(rulesets)
        self.moderator = moderator
        self.policy = policy

    @classmethod
    def build(
        cls,
        *,
        openai: OpenAIModerationConfig | None = None,
        harm_classifier_path: Path | None = None,
        rulesets_dir: Path | None = None,
        policy: ModerationPolicy = DEFAULT_POLICY,
        guard: GuardModerationConfig | None = None,
        remote_order: Sequence[str] = ("guard", "openai"),
    ) -> SafetyLayer:
        """The layer with the default providers and the shipped (or a directory of) rule sets."""
        rulesets = load_rulesets(rulesets_dir) if rulesets_dir else shipped_rulesets()
        return cls(rulesets, default_moderator(openai, harm_classifier_path, guard, remote_order), policy)

    def warm(self) -> None:
        """Load what the first check would otherwise wait for: the language detector's models (~1 s)."""
        if self.moderator is not None and self.moderator.language is not None:
            self.moderator.language.guess("Where is my parcel?")

    def ruleset(self, decision_type: str) -> RuleSet:
        try:
            return self.rulesets[decision_type]
        except KeyError:
            raise UnknownDecisionType(
                f"no rule set for decision type {decision_type!r}; known: {sorted(self.rulesets)}"
            ) from None

    # ------------------------------------------------------------ entry points

    def allowed_actions(
        self, decision_type: str, *, context: Mapping[str, Any] | None = None, actions: Sequence[str] = ()
    ) -> tuple[str, ...]:
        """The candidate actions no input-stage mask rule removes (default: the rule set's actions).
        Raises `RuleEvaluationError` when the context has the wrong shape; `check_input` escalates instead."""
        ruleset = self.ruleset(decision_type)
        candidates = tuple(actions) or ruleset.actions
        hits = evaluate_rules(ruleset, "input", build_scope(context), candidates)
        masked = {a for hit in hits if hit.effect == "mask" for a in hit.masked}
        return tuple(a for a in candidates if a not in masked)

    def check_input(
        self,
        decision_type: str,
        *,
        context: Mapping[str, Any] | None = None,
        text: str | None = None,
        actions: Sequence[str] = (),
    ) -> Verdict:
        return self.check_inputs(decision_type, [Check(context or {}, actions, None, text)])[0]

    def check_inputs(self, decision_type: str, checks: Sequence[Check]) -> list[Verdict]:
        """Check a batch of inputs; their texts are moderated in one provider call."""
        ruleset = self.ruleset(decision_type)
        return self._check(ruleset, "input", checks, [self._input_findings(ruleset, c) for c in checks])

    def check_output(
        self,
        decision_type: str,
        *,
        context: Mapping[str, Any] | None = None,
        action: str | None = None,
        text: str | None = None,
        actions: Sequence[str] = (),
        input_text: str | None = None,
    ) -> Verdict:
        return self.check_outputs(decision_type, [Check(context or {}, actions, action, text, input_text)])[0]

    def check_outputs(self, decision_type: str, checks: Sequence[Check]) -> list[Verdict]:
        """Check a batch of outputs; their texts are moderated in one provider call."""
        ruleset = self.ruleset(decision_type)
        return self._check(ruleset, "output", checks, [self._output_findings(ruleset, c) for c in checks])

    # ------------------------------------------------------------ internals

    def _check(
        self, ruleset: RuleSet, stage: str, checks: Sequence[Check], findings: Sequence[_Findings]
    ) -> list[Verdict]:
        # The local providers read the original text (in memory only; the verdict carries the
        # redacted one): a placeholder, or any neutral stand-in for the personal data, moves the
        # scores ("I will stab you tomorrow" 0.47, with ", my email is [EMAIL]" 0.17; bench/pii.py
        # measures how far). Providers outside the process (OpenAI, a guard model) read the redacted
        # text: personal data a rule removes never leaves the process.
        texts = [c.text for c in checks]
        remote = [
            apply_redactions(c.text, f.spans) if c.text is not None and f.spans else c.text
            for c, f in zip(checks, findings, strict=True)
        ]
        verdicts = []
        for check, found, report in zip(checks, findings, self._moderate(texts, remote), strict=True):
            extra = list(found.extra)
            if isinstance(report, Reason):
                extra, report = [*extra, report], None
            verdicts.append(
                combine(
                    stage=stage,
                    decision_type=ruleset.decision_type,
                    rule_hits=found.hits,
                    moderation=report,
                    policy=self.policy,
                    text=check.text,
                    action=check.action,
                    masked_actions=found.masked,
                    allowed_actions=found.allowed,
                    extra_reasons=extra,
                    ruleset_name=ruleset.name,
                    ruleset_hash=ruleset.hash,
                    errors=[r.message for r in extra if r.code in ("rule-error", "moderation-unavailable")],
                    uncovered_language=ruleset.uncovered_language,
                )
            )
        return verdicts

    def moderate(self, texts: Sequence[str], remote_texts: Sequence[str] | None = None) -> list[ModerationReport]:
        """Moderation of free texts exactly as a check moderates them (same chain, same preparation):
        what `/v1/moderations` and `arbiter safety eval` read. Raises `ProviderError` when every harm
        provider failed and `ValueError` when the layer has no moderator."""
        if self.moderator is None:
            raise ValueError("this safety layer has no moderator")
        if remote_texts is None and self.moderator.primaries:
            # As on the decision path: providers outside the process (OpenAI, a guard model) never read
            # the personal data in a text; the local ones read it in memory.
            remote_texts = [redact_pii(t)[0] for t in texts]
        return self.moderator.moderate(list(texts), remote_texts)

    def _moderate(
        self, texts: Sequence[str | None], remote: Sequence[str | None]
    ) -> list[ModerationReport | Reason | None]:
        """A report per text; None where there is no text; a Reason when moderation was unavailable.
        `remote`: the same texts as providers outside the process may read them (redacted)."""
        wanted = [i for i, t in enumerate(texts) if t and t.strip()]
        out: list[ModerationReport | Reason | None] = [None] * len(texts)
        if not wanted or self.moderator is None:
            return out
        try:
            reports = self.moderate([texts[i] or "" for i in wanted], [remote[i] or "" for i in wanted])
        except ProviderError as exc:
            reason = Reason("safety", "moderation-unavailable", Outcome.ESCALATE, str(exc))
            for i in wanted:
                out[i] = reason
            return out
        for i, report in zip(wanted, reports, strict=True):
            out[i] = report
        return out

    def _rules(
        self, ruleset: RuleSet, stage: str, scope: dict, actions: Sequence[str]
    ) -> tuple[list[RuleHit], list[Reason]]:
        try:
            return evaluate_rules(ruleset, stage, scope, actions), []
        except RuleEvaluationError as exc:
            # Fail closed: a context the rules cannot read must not let the decision through.
            return [], [Reason("safety", "rule-error", Outcome.ESCALATE, str(exc))]

    def _input_findings(self, ruleset: RuleSet, check: Check) -> _Findings:
        candidates = tuple(check.actions) or ruleset.actions
        hits, extra = self._rules(ruleset, "input", build_scope(check.context, check.text), candidates)
        masked = tuple(a for a in candidates if any(a in h.masked for h in hits if h.effect == "mask"))
        allowed = tuple(a for a in candidates if a not in masked)
        if candidates and not allowed:
            extra.append(
                Reason(
                    "safety",
                    "no-allowed-action",
                    Outcome.ESCALATE,
                    f"rules {sorted({h.rule_id for h in hits if h.masked})} masked every action",
                )
            )
        return _Findings(hits, extra, masked, allowed)

    def _output_findings(self, ruleset: RuleSet, check: Check) -> _Findings:
        scope = build_scope(check.context, check.input_text, check.action, check.text)
        hits, extra = self._rules(ruleset, "output", scope, check.actions)
        masked: tuple[str, ...] = ()
        allowed: tuple[str, ...] = ()
        if check.action is not None:
            candidates = tuple(check.actions) or ruleset.actions
            if candidates and check.action not in candidates:
                extra.append(
                    Reason(
                        "safety",
                        "unknown-action",
                        Outcome.BLOCK,
                        f"{check.action!r} is not one of the candidate actions {list(candidates)}",
                    )
                )
            # Re-check the masks: the policy may have ignored them (defence in depth).
            mask_hits, mask_errors = self._rules(ruleset, "input", scope, candidates)
            extra.extend(mask_errors)
            mask_hits = [h for h in mask_hits if h.effect == "mask"]
            masked = tuple(a for a in candidates if any(a in h.masked for h in mask_hits))
            allowed = tuple(a for a in candidates if a not in masked)
            blockers = [h for h in mask_hits if check.action in h.masked]
            if blockers:
                hits.extend(blockers)
                extra.append(
                    Reason(
                        "safety",
                        "action-masked",
                        Outcome.MASK,
                        f"{check.action!r} is masked by {[h.rule_id for h in blockers]}",
                    )
                )
                if not allowed:
                    extra.append(
                        Reason(
                            "safety",
                            "no-allowed-action",
                            Outcome.ESCALATE,
                            f"rules {sorted({h.rule_id for h in mask_hits})} masked every action",
                        )
                    )
        return _Findings(hits, extra, masked, allowed)
