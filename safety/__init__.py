"""Arbiter's safety layer: nothing a policy proposes reaches a user or a queue without passing it.

- `safety.moderation`: moderation providers and the fallback chain;
- `safety.normalize`: the text every detector reads (look-alikes, zero-width, leetspeak undone);
- `safety.language`: which language a text is in and whether the providers cover it;
- `safety.pii`: personal-data detectors and redaction;
- `safety.rules` (+ `safety.conditions`): versioned YAML rule sets per decision type;
- `safety.verdict`: combining moderation and rule hits into one verdict;
- `safety.layer`: `SafetyLayer`, the object the app calls.

This package imports nothing from the rest of Arbiter and keeps no state of its own.
"""

from safety.language import Coverage, LanguageDetector
from safety.layer import Check, SafetyLayer, UnknownDecisionType, default_moderator
from safety.moderation import (
    HarmClassifier,
    ModerationReport,
    ModerationResult,
    Moderator,
    OpenAIModerationConfig,
    ProviderError,
    retrain,
    train_harm_classifier,
)
from safety.normalize import normalize
from safety.pii import PIIMatch, find_pii, redact_pii
from safety.rules import (
    RuleEvaluationError,
    RuleHit,
    RuleSet,
    RuleSetError,
    load_ruleset,
    load_rulesets,
    parse_ruleset,
    shipped_rulesets,
)
from safety.verdict import ModerationPolicy, Outcome, Reason, Verdict, combine

__all__ = [
    "Check",
    "Coverage",
    "HarmClassifier",
    "LanguageDetector",
    "ModerationPolicy",
    "ModerationReport",
    "ModerationResult",
    "Moderator",
    "OpenAIModerationConfig",
    "Outcome",
    "PIIMatch",
    "ProviderError",
    "Reason",
    "RuleEvaluationError",
    "RuleHit",
    "RuleSet",
    "RuleSetError",
    "SafetyLayer",
    "UnknownDecisionType",
    "Verdict",
    "combine",
    "default_moderator",
    "find_pii",
    "load_ruleset",
    "load_rulesets",
    "normalize",
    "parse_ruleset",
    "redact_pii",
    "retrain",
    "shipped_rulesets",
    "train_harm_classifier",
]
