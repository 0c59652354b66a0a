"""What each guard-model family is asked and how its answer reads, mapped onto OpenAI's categories.

Three families of open guard models are served in production behind vLLM's OpenAI-compatible chat
endpoint. Their prompt templates ship inside each model's tokenizer (`chat_template`) and vLLM
applies them, so what a client controls is the conversation it sends and the template arguments;
what it must get right is reading the answer:

- **Llama Guard 3** (`meta-llama/Llama-Guard-3-8B`, `-1B`): the conversation as chat messages; the
  template wraps it in the S1-S14 hazard policy. Answer: ``safe`` or ``unsafe`` and, on a second
  line, the violated codes (``unsafe\\nS1,S10``).
- **Qwen3Guard** (`Qwen/Qwen3Guard-Gen-0.6B/4B/8B`): the conversation as chat messages. Answer:
  ``Safety: Safe|Unsafe|Controversial`` then ``Categories: Violent, ...`` (``None`` when safe).
- **Granite Guardian 3.x** (`ibm-granite/granite-guardian-3.1-2b`, `-3.2-5b`, `-3.3-8b`): one
  request per risk, named by the template argument ``guardian_config={"risk_name": ...}`` (sent as
  vLLM's ``chat_template_kwargs``). Answer: ``Yes`` (the risk is present) or ``No``; 3.3 writes
  ``<score> yes </score>``.

Every family's own labels are mapped onto the OpenAI moderation taxonomy where one fits, so
scores compare across providers; hazards OpenAI has no category for keep an Arbiter name of their
own (``privacy``, ``specialized-advice``, ``jailbreak`` ...). A mapping lists a parent category
with its sub-category (``illicit`` with ``illicit/violent``) because OpenAI flags both.

Probabilities come from the answer token's log-probabilities when the server returns them (vLLM
does with ``logprobs``): P(unsafe) for Llama Guard, P(Unsafe) + P(Controversial)/2 for Qwen3Guard,
P(Yes) for Granite Guardian, each normalised over the family's answer labels. Without them the
answer itself is the score (1, 0.5 for Controversial, 0).

This module parses and maps; it makes no requests (`safety.moderation.guard` does) and raises
`GuardOutputError` for any answer it cannot read, which the provider turns into a fallback.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FAMILIES",
    "FAMILY_LANGUAGES",
    "GRANITE_DEFAULT_RISKS",
    "GRANITE_RISKS",
    "LLAMA_GUARD_HAZARDS",
    "QWEN3GUARD_CATEGORIES",
    "GuardAnswer",
    "GuardOutputError",
    "category_scores",
    "label_probabilities",
    "parse_granite_guardian",
    "parse_llama_guard",
    "parse_qwen3guard",
]

FAMILIES = ("llama-guard", "qwen3guard", "granite-guardian")

# The languages each family's model card says it was trained and evaluated on (ISO 639-1; "*" for
# Qwen3Guard's 119 languages and dialects); the verdict's language coverage reads them.
FAMILY_LANGUAGES: dict[str, frozenset[str]] = {
    "llama-guard": frozenset({"en", "fr", "de", "hi", "it", "pt", "es", "th"}),
    "qwen3guard": frozenset({"*"}),
    "granite-guardian": frozenset({"en"}),
}

# Llama Guard 3's hazard taxonomy (MLCommons AI Safety v0.5 plus S14), as its chat template lists it.
LLAMA_GUARD_HAZARDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "S1": ("Violent Crimes", ("violence", "illicit", "illicit/violent")),
    "S2": ("Non-Violent Crimes", ("illicit",)),
    "S3": ("Sex-Related Crimes", ("sexual", "illicit")),
    "S4": ("Child Sexual Exploitation", ("sexual", "sexual/minors")),
    "S5": ("Defamation", ("defamation",)),
    "S6": ("Specialized Advice", ("specialized-advice",)),
    "S7": ("Privacy", ("privacy",)),
    "S8": ("Intellectual Property", ("intellectual-property",)),
    "S9": ("Indiscriminate Weapons", ("illicit", "illicit/violent")),
    "S10": ("Hate", ("hate",)),
    "S11": ("Suicide & Self-Harm", ("self-harm",)),
    "S12": ("Sexual Content", ("sexual",)),
    "S13": ("Elections", ("elections",)),
    "S14": ("Code Interpreter Abuse", ("code-interpreter-abuse",)),
}

# Qwen3Guard-Gen's categories. "Unethical Acts" covers bias, hate speech, insults and harassment
# in one label, so it maps onto both OpenAI categories.
QWEN3GUARD_CATEGORIES: dict[str, tuple[str, ...]] = {
    "Violent": ("violence",),
    "Non-violent Illegal Acts": ("illicit",),
    "Sexual Content or Sexual Acts": ("sexual",),
    "PII": ("privacy",),
    "Suicide & Self-Harm": ("self-harm",),
    "Unethical Acts": ("harassment", "hate"),
    "Politically Sensitive Topics": ("politically-sensitive",),
    "Copyright Violation": ("intellectual-property",),
    "Jailbreak": ("jailbreak",),
}

# Granite Guardian's risk names (the `risk_name` template argument) for user text.
GRANITE_RISKS: dict[str, tuple[str, ...]] = {
    "harm": ("harm",),  # the umbrella risk: any of the others, and more
    "social_bias": ("hate",),
    "violence": ("violence",),
    "sexual_content": ("sexual",),
    "unethical_behavior": ("illicit",),
    "profanity": ("profanity",),
    "jailbreak": ("jailbreak",),
}
# One request per risk and text: the umbrella plus the risks that have an OpenAI category.
GRANITE_DEFAULT_RISKS = ("harm", "social_bias", "violence", "sexual_content", "unethical_behavior")


class GuardOutputError(ValueError):
    """The guard model's answer does not follow its family's output format."""


@dataclass(frozen=True)
class GuardAnswer:
    """One parsed answer: whether the model flagged the text, the probability it gives to "unsafe",
    and the categories (already in Arbiter's / OpenAI's names) it named."""

    flagged: bool
    p_unsafe: float
    categories: tuple[str, ...] = ()


def label_probabilities(
    logprobs: Sequence[Any] | None, labels: Sequence[str], after: str | None = None
) -> dict[str, float] | None:
    """The probability of each answer label at the position where the model wrote its label.

    `logprobs` is the chat completion's ``choices[0].logprobs.content`` (tokens with their
    ``top_logprobs``). The label position is the first token (after the text `after`, if given)
    that starts exactly one label; the alternatives there are matched the same way (a label may be
    split into several tokens, so a token counts for the one label it begins). The result is
    normalised over the labels seen; None when there are no log-probabilities or no such position.
    """
    if not logprobs:
        return None
    lowered = [label.lower() for label in labels]

    def which(token: str) -> str | None:
        piece = token.strip().lower()
        if not piece:
            return None
        hits = [label for label, low in zip(labels, lowered, strict=True) if low.startswith(piece)]
        return hits[0] if len(hits) == 1 else None

    written = ""
    for entry in logprobs:
        token = _get(entry, "token")
        if after is not None and after.lower() not in written.lower():
            written += token
            continue
        written += token
        if which(token) is None:
            continue
        mass: dict[str, float] = {}
        alternatives = _get(entry, "top_logprobs") or [entry]
        for alt in alternatives:
            label = which(_get(alt, "token"))
            if label is not None:
                mass[label] = mass.get(label, 0.0) + math.exp(float(_get(alt, "logprob")))
        total = sum(mass.values())
        if total <= 0:
            return None
        return {label: mass.get(label, 0.0) / total for label in labels}
    return None


def parse_llama_guard(content: str, logprobs: Sequence[Any] | None = None) -> GuardAnswer:
    """``safe`` | ``unsafe\\nS1,S10`` -> an answer with the hazards mapped onto categories.

    Example:
        >>> parse_llama_guard("unsafe\\nS1,S10").categories
        ('hate', 'illicit', 'illicit/violent', 'violence')
    """
    lines = [line.strip() for line in content.strip().splitlines() if line.strip()]
    if not lines or lines[0].lower() not in ("safe", "unsafe"):
        raise GuardOutputError(f"Llama Guard answer must start with 'safe' or 'unsafe' ({_shape(content)})")
    unsafe = lines[0].lower() == "unsafe"
    probs = label_probabilities(logprobs, ("safe", "unsafe"))
    p_unsafe = probs["unsafe"] if probs else float(unsafe)
    if not unsafe:
        return GuardAnswer(False, p_unsafe)
    codes = [c.strip().upper() for c in ",".join(lines[1:]).split(",") if c.strip()]
    unknown = [c for c in codes if c not in LLAMA_GUARD_HAZARDS]
    if not codes or unknown:
        raise GuardOutputError(f"Llama Guard named no known hazard code ({_shape(content)})")
    categories = {cat for code in codes for cat in LLAMA_GUARD_HAZARDS[code][1]}
    return GuardAnswer(True, p_unsafe, tuple(sorted(categories)))


_QWEN_SAFETY = re.compile(r"Safety:\s*(Safe|Unsafe|Controversial)\b", re.IGNORECASE)
_QWEN_CATEGORIES = re.compile(r"Categories:\s*(.*)", re.IGNORECASE)


def parse_qwen3guard(
    content: str, logprobs: Sequence[Any] | None = None, controversial_flags: bool = True
) -> GuardAnswer:
    """``Safety: Unsafe\\nCategories: Violent`` -> an answer. `controversial_flags` is Qwen's
    "strict" reading (Controversial counts as unsafe); False is its "loose" one.

    Example:
        >>> parse_qwen3guard("Safety: Controversial\\nCategories: Unethical Acts")
        GuardAnswer(flagged=True, p_unsafe=0.5, categories=('harassment', 'hate'))
    """
    safety = _QWEN_SAFETY.search(content)
    if safety is None:
        raise GuardOutputError(f"Qwen3Guard answer has no 'Safety: ...' line ({_shape(content)})")
    label = safety.group(1).capitalize()
    probs = label_probabilities(logprobs, ("Safe", "Unsafe", "Controversial"), after="Safety:")
    if probs:
        p_unsafe = probs["Unsafe"] + probs["Controversial"] / 2
    else:
        p_unsafe = {"Safe": 0.0, "Unsafe": 1.0, "Controversial": 0.5}[label]
    flagged = label == "Unsafe" or (label == "Controversial" and controversial_flags)
    if not flagged:
        return GuardAnswer(False, p_unsafe)
    found = _QWEN_CATEGORIES.search(content)
    names = [n.strip() for n in found.group(1).split(",")] if found else []
    names = [n for n in names if n and n.lower() != "none"]
    known = {k.lower(): v for k, v in QWEN3GUARD_CATEGORIES.items()}
    unknown = [n for n in names if n.lower() not in known]
    if not names or unknown:
        raise GuardOutputError(f"Qwen3Guard named no known category ({_shape(content)})")
    categories = {cat for n in names for cat in known[n.lower()]}
    return GuardAnswer(True, p_unsafe, tuple(sorted(categories)))


_GRANITE_ANSWER = re.compile(r"^\s*(?:<score>\s*)?(yes|no)\b", re.IGNORECASE)


def parse_granite_guardian(content: str, risk: str, logprobs: Sequence[Any] | None = None) -> GuardAnswer:
    """``Yes`` / ``No`` (3.1, 3.2) or ``<score> yes </score>`` (3.3) for one risk -> an answer.

    Example:
        >>> parse_granite_guardian("<score> yes </score>", "social_bias").categories
        ('hate',)
    """
    # 3.3 may think first when asked to; the verdict is what follows the reasoning.
    body = content.split("</think>")[-1]
    answer = _GRANITE_ANSWER.match(body)
    if answer is None:
        raise GuardOutputError(f"Granite Guardian answer must be Yes or No ({_shape(content)})")
    yes = answer.group(1).lower() == "yes"
    probs = label_probabilities(logprobs, ("Yes", "No"), after="<score>" if "<score>" in body else None)
    p_yes = probs["Yes"] if probs else float(yes)
    return GuardAnswer(yes, p_yes, GRANITE_RISKS[risk] if yes else ())


def category_scores(answers: Mapping[str, GuardAnswer], family: str) -> dict[str, float]:
    """Per-category scores from one text's answers (one per Granite risk, else one).

    A named category scores the answer's P(unsafe). The others score 0 when the model named
    categories, and P(unsafe) when it called the text safe: then it gave no category, and the
    only thing it said is how likely "unsafe" was, which keeps safe texts ranked among themselves.
    """
    scores: dict[str, float] = {}
    for key, answer in answers.items():
        if family == "granite-guardian":
            for category in GRANITE_RISKS[key]:
                scores[category] = max(scores.get(category, 0.0), answer.p_unsafe)
            continue
        for category in _family_categories(family):
            named = category in answer.categories
            value = answer.p_unsafe if named or not answer.flagged else 0.0
            scores[category] = max(scores.get(category, 0.0), value)
    return {c: round(s, 6) for c, s in scores.items()}


def _family_categories(family: str) -> tuple[str, ...]:
    mapping = LLAMA_GUARD_HAZARDS.values() if family == "llama-guard" else ((None, v) for v in QWEN3GUARD_CATEGORIES.values())
    return tuple(sorted({c for _, cats in mapping for c in cats}))


def _shape(content: str) -> str:
    # Never the answer itself: a misconfigured endpoint (a chat model, not a guard) may echo the
    # user's text, and error messages end up in verdicts, logs and the store.
    return f"{len(content)} characters, {len(content.splitlines())} line(s)"


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
