"""Redaction and moderation in the safety layer: moderation reads the original text, the verdict
carries the redacted one, and the shipped ticket rule set redacts personal data."""

from __future__ import annotations

import pytest

from safety.layer import SafetyLayer

LAYER = SafetyLayer.build()


def _scores(results) -> dict[tuple[str, str], float]:
    return {(r.provider, c): s for r in results for c, s in r.scores.items()}


@pytest.mark.parametrize("decision_type", ["content", "ticket-routing"])
def test_moderation_reads_the_original_text_not_the_placeholders(decision_type):
    """Issue 15: "I will stab you tomorrow" scored 0.47 for violence and 0.17 once ", my email is
    [EMAIL]" followed it, because moderation read the redacted text. The verdict must carry exactly
    the scores of the original text, and still the redacted text."""
    text = "I will stab you tomorrow, my email is jo.smith@example.com"
    verdict = LAYER.check_input(decision_type, context={"subject": "x", "body": text}, text=text)
    [original] = LAYER.moderator.moderate([text])
    [placeholder] = LAYER.moderator.moderate(["I will stab you tomorrow, my email is [EMAIL]"])
    assert _scores(verdict.moderation) == _scores(original.results)
    assert _scores(original.results) != _scores(placeholder.results)
    assert verdict.text == "I will stab you tomorrow, my email is [EMAIL]"
    assert verdict.redactions and "jo.smith" not in str(verdict.to_dict())


def test_shipped_ticket_rules_redact_personal_data():
    text = "Refund please\nCard 4111 1111 1111 1111, call me on 020 7946 0958 or mail jürgen.weiß@gmx.de"
    verdict = LAYER.check_input("ticket-routing", context={"subject": "Refund please", "body": text}, text=text)
    assert verdict.outcome == "redact" and verdict.rule_ids() == ["no-pii"]
    assert verdict.text == "Refund please\nCard [CARD], call me on [PHONE] or mail [EMAIL]"
