"""Language coverage: the detected language, whether the providers that decided cover it, and what
the rule set makes of an uncovered text (escalate content, mark a routed ticket; never a silent allow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safety.language import (
    ANY_LANGUAGE,
    ENGLISH,
    LanguageDetector,
    default_language_detector,
    provider_languages,
)
from safety.layer import SafetyLayer
from safety.moderation import Moderator
from safety.moderation.base import ModerationResult, ProviderError
from safety.moderation.openai_api import OPENAI_MODERATION_LANGUAGES
from safety.rules import RuleSetError, parse_ruleset, shipped_rulesets
from safety.verdict import Outcome

SUITE = Path(__file__).resolve().parents[2] / "safety" / "data" / "language" / "suite.jsonl"
THREAT_ES = "Voy a matarte cuando salgas del trabajo, sé dónde vives"
LOCAL = {"local-harm": ENGLISH}


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return default_language_detector()


class Recording:
    """A harm provider that flags nothing, records what it read, and declares its languages."""

    def __init__(self, name: str = "recording", languages: frozenset[str] | None = None, fail: bool = False):
        self.name = name
        if languages is not None:
            self.languages = languages
        self.fail = fail
        self.seen: list[str] = []

    def classify(self, texts):
        if self.fail:
            raise ProviderError(self.name, "timeout", "no answer")
        self.seen.extend(texts)
        return [ModerationResult(self.name, False, (), {"violence": 0.01}) for _ in texts]


def test_a_spanish_threat_is_uncovered_by_english_models(detector):
    coverage = detector.coverage(THREAT_ES, LOCAL)
    assert (coverage.status, coverage.language, coverage.uncovered) == ("none", "es", True)
    assert coverage.confidence > 0.9


@pytest.mark.parametrize(
    "text",
    [
        "Voy a matarte cuando salgas del trabajo",
        "Ich werde dich finden und dir weh tun",
        "Я тебя убью",  # any length in a non-Latin script: the script rules English out
        "我要杀了你",
        "سأقتلك",
    ],
)
def test_non_english_is_uncovered(detector, text):
    assert detector.coverage(text, LOCAL).status == "none"


@pytest.mark.parametrize(
    "text",
    [
        "hi",
        "ok thanks",
        "refund pls",
        "I can't log in",
        "thx, that worked",
        "can u reset my 2fa",
        "Login broken again",
        "Merci",
        "I will kill you, idiot",  # lingua's low-accuracy guess is Swedish; every word is English
        "System: Windows 11, browser Firefox 128",
        "Your last update broke the dark mode on Android.",
        "My order #1234 has not arrived yet, can you check?",
        "Hello, I would like a refund for order 88231, the item arrived broken. Please send a label.",
        'Our invoice says "Rechnung" instead of "Invoice", can you switch the language to English?',
    ],
)
def test_english_support_messages_are_not_marked(detector, text):
    """False alarms matter: short or typo-ridden English must come out covered or undetermined."""
    assert not detector.coverage(text, LOCAL).uncovered


def test_a_foreign_sentence_inside_an_english_ticket_is_partial(detector):
    text = f"Hi, my order 5521 is late again and I am getting annoyed. {THREAT_ES}. Thanks."
    coverage = detector.coverage(text, LOCAL)
    assert (coverage.status, coverage.language) == ("partial", "es")


def test_coverage_follows_the_providers_languages(detector):
    assert detector.coverage(THREAT_ES, {"openai": OPENAI_MODERATION_LANGUAGES}).status == "full"
    assert detector.coverage(THREAT_ES, {"openai": OPENAI_MODERATION_LANGUAGES}).covered_by == ("openai",)
    assert detector.coverage(THREAT_ES, {"guard": ANY_LANGUAGE}).status == "full"
    assert provider_languages(object()) == ENGLISH  # a provider that declares nothing reads English


def test_the_chain_reads_normalised_text_and_reports_coverage():
    harm = Recording()
    moderator = Moderator(None, [harm], language=default_language_detector())
    (report,) = moderator.moderate(["I will k1ll y\u200bou, іdіot"])
    assert harm.seen == ["I will kill you, idiot"]
    assert report.coverage is not None and report.to_dict()["coverage"]["status"] in ("full", "undetermined")


def test_a_fallback_that_reads_fewer_languages_leaves_the_text_uncovered():
    """OpenAI would have read Spanish; when it times out the English-only fallback decides, and the
    report must say the text went unread, not inherit the primary's coverage."""
    primary = Recording("openai", OPENAI_MODERATION_LANGUAGES, fail=True)
    moderator = Moderator(primary, [Recording("local-harm")], language=default_language_detector())
    (report,) = moderator.moderate([THREAT_ES])
    assert report.fallback and report.coverage.status == "none"
    working = Moderator(Recording("openai", OPENAI_MODERATION_LANGUAGES), [Recording("local-harm")],
                        language=default_language_detector())
    assert working.moderate([THREAT_ES])[0].coverage.status == "full"


@pytest.fixture(scope="module")
def layer() -> SafetyLayer:
    return SafetyLayer(
        shipped_rulesets(), Moderator(None, [Recording("local-harm")], language=default_language_detector())
    )


def test_uncovered_content_is_escalated(layer):
    verdict = layer.check_input("content", text=THREAT_ES)
    assert verdict.outcome == Outcome.ESCALATE and verdict.needs_review
    assert [r.code for r in verdict.reasons] == ["language-uncovered"]
    assert verdict.to_dict()["language_coverage"]["language"] == "es"


def test_an_uncovered_ticket_is_routed_and_marked(layer):
    verdict = layer.check_input("ticket-routing", context={"subject": "pedido", "body": THREAT_ES}, text=THREAT_ES)
    assert verdict.outcome == Outcome.ALLOW and verdict.deliverable
    (reason,) = [r for r in verdict.reasons if r.code == "language-uncovered"]
    assert reason.outcome == Outcome.ALLOW and "'es'" in reason.message
    assert verdict.to_dict()["language_coverage"]["status"] == "none"


def test_covered_english_gets_no_coverage_reason(layer):
    verdict = layer.check_input("content", text="My order #1234 has not arrived yet, can you check?")
    assert verdict.outcome == Outcome.ALLOW and verdict.reasons == ()
    assert verdict.coverage.status == "full"


def test_rule_sets_choose_the_effect_and_default_to_escalate():
    base = {"name": "x", "decision_type": "x", "rules": []}
    assert parse_ruleset(base).uncovered_language == "escalate"
    assert parse_ruleset({**base, "uncovered_language": "block"}).uncovered_language == "block"
    with pytest.raises(RuleSetError, match="uncovered_language"):
        parse_ruleset({**base, "uncovered_language": "allow"})
    assert shipped_rulesets()["content"].uncovered_language == "escalate"
    assert shipped_rulesets()["ticket-routing"].uncovered_language == "mark"


def test_suite_rates(detector):
    """The labelled language suite (written for this project): on the held-out half at most 10% of
    English support messages marked uncovered and at least 90% of non-English texts marked
    (bench/language_coverage.py reports the figures with intervals)."""
    rows = [json.loads(line) for line in SUITE.read_text(encoding="utf-8").splitlines() if line.strip()]
    held = [r for r in rows if r["split"] == "held-out"]
    english = [r["text"] for r in held if r["language"] == "en"]
    other = [r["text"] for r in held if r["language"] != "en"]
    false = sum(detector.coverage(t, LOCAL).uncovered for t in english) / len(english)
    marked = sum(detector.coverage(t, LOCAL).uncovered for t in other) / len(other)
    assert false <= 0.10 and marked >= 0.90, (false, marked)


def test_warm_loads_the_detector_before_the_first_check():
    detector = LanguageDetector(preload=False)
    layer = SafetyLayer(shipped_rulesets(), Moderator(None, [Recording()], language=detector))
    assert detector._detector is None
    layer.warm()
    assert detector._detector is not None
