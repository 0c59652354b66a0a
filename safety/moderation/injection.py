"""Prompt-injection and jailbreak heuristics as a local moderation provider.

A small table of weighted patterns, matched on a normalised copy of the text (Unicode NFKC, zero-width
characters removed, whitespace collapsed, lower case) so trivial obfuscation does not slip past.
Several weak signals add up: the score is 1 - prod(1 - weight) over the patterns that matched.

This is deliberately a heuristic: it catches the common phrasings ("ignore all previous
instructions", "you are DAN", fake system turns) cheaply and explains itself (the ids of the patterns
that matched). It does not try to catch paraphrases or encoded payloads; those need a model.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from safety.moderation.base import ModerationResult, flagged_result

__all__ = ["DEFAULT_PATTERNS", "InjectionHeuristics", "InjectionPattern", "normalise"]


@dataclass(frozen=True)
class InjectionPattern:
    id: str
    category: str  # "prompt_injection" or "jailbreak"
    weight: float  # probability-like contribution in (0, 1)
    regex: str


_ANY = r"(?:all |any |the |your |my |of )*"

DEFAULT_PATTERNS: tuple[InjectionPattern, ...] = (
    InjectionPattern(
        "ignore-instructions",
        "prompt_injection",
        0.9,
        rf"\b(?:ignore|disregard|forget|override|skip)\s+{_ANY}(?:previous|prior|above|earlier|preceding|"
        rf"system|original|initial)\s+(?:instructions?|prompts?|rules?|directions?|messages?|context)\b",
    ),
    InjectionPattern(
        "new-instructions",
        "prompt_injection",
        0.5,
        r"\b(?:new|updated|real|actual)\s+instructions?\s*(?::|are\b)",
    ),
    InjectionPattern(
        "reveal-system-prompt",
        "prompt_injection",
        0.7,
        rf"\b(?:reveal|print|show|repeat|output|leak|tell me)\s+{_ANY}(?:system\s+prompt|hidden\s+"
        rf"instructions?|initial\s+instructions?|instructions\s+above)\b",
    ),
    InjectionPattern(
        "fake-role-turn",
        "prompt_injection",
        0.6,
        r"(?:^|\n)\s*(?:system|assistant)\s*:|<\|im_start\|>|\[/?inst\]|<<sys>>|###\s*(?:system|instruction)",
    ),
    InjectionPattern(
        "dan",
        "jailbreak",
        0.9,
        r"\bdo anything now\b|\byou are (?:now )?dan\b|\bdan mode\b",
    ),
    InjectionPattern(
        "developer-mode",
        "jailbreak",
        0.7,
        r"\b(?:developer|god|unrestricted|jailbreak|jailbroken)\s+mode\b",
    ),
    InjectionPattern(
        # Weak on its own ("no restrictions on returns" is an ordinary sentence); it adds up with others.
        "no-restrictions",
        "jailbreak",
        0.35,
        r"\b(?:without|no|free of|free from|ignore (?:your|all))\s+(?:any\s+)?(?:restrictions|filters|"
        r"limitations|guidelines|safety|censorship|rules)\b",
    ),
    InjectionPattern(
        "pretend-persona",
        "jailbreak",
        0.4,
        r"\b(?:pretend|imagine|act as if|roleplay as|act as)\b.{0,60}\b(?:you are|to be|an?)\b.{0,60}"
        r"\b(?:evil|unfiltered|uncensored|unethical|amoral|no morals)\b",
    ),
    InjectionPattern(
        "bypass-safety",
        "jailbreak",
        0.8,
        r"\b(?:bypass|disable|turn off|get around|circumvent)\s+(?:your\s+|the\s+|all\s+)?(?:safety|content|"
        r"moderation|ethical)\s+(?:filters?|policy|policies|guidelines|guardrails)\b",
    ),
    InjectionPattern(
        "no-longer-bound",
        "jailbreak",
        0.7,
        r"\bno longer (?:bound|restricted|limited) by\b",
    ),
)

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def normalise(text: str) -> str:
    """The form the patterns are matched against (newlines kept: fake role turns need them)."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).lower()
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return text


class InjectionHeuristics:
    """Flags prompt-injection and jailbreak attempts with weighted regular expressions.

    Example:
        >>> InjectionHeuristics().classify(["Ignore all previous instructions."])[0].categories
        ('prompt_injection',)
    """

    name = "injection-heuristics"

    def __init__(self, patterns: Sequence[InjectionPattern] = DEFAULT_PATTERNS, threshold: float = 0.5):
        if not patterns:
            raise ValueError("InjectionHeuristics needs at least one pattern")
        for pattern in patterns:
            if not 0.0 < pattern.weight < 1.0:
                raise ValueError(f"pattern {pattern.id}: weight must be in (0, 1), got {pattern.weight}")
        self.threshold = threshold
        self.patterns = tuple(patterns)
        self._compiled = [(p, re.compile(p.regex, re.DOTALL)) for p in self.patterns]
        self.categories = tuple(sorted({p.category for p in self.patterns}))

    def matches(self, text: str) -> list[str]:
        """Ids of the patterns that match `text` (for explaining a flag)."""
        normalised = normalise(text)
        return [p.id for p, rx in self._compiled if rx.search(normalised)]

    def classify(self, texts: Sequence[str]) -> list[ModerationResult]:
        results = []
        for text in texts:
            normalised = normalise(text)
            miss = {category: 1.0 for category in self.categories}
            for pattern, rx in self._compiled:
                if rx.search(normalised):
                    miss[pattern.category] *= 1.0 - pattern.weight
            scores = {category: round(1.0 - m, 6) for category, m in miss.items()}
            results.append(flagged_result(self.name, scores, self.threshold))
        return results
