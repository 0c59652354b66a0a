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


class _RecordingRemote:
    """A provider outside the process (as OpenAI moderation or a guard model is): records what it was sent."""

    name = "remote"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def classify(self, texts):
        from safety.moderation.base import ModerationResult

        self.seen.extend(texts)
        return [ModerationResult(provider=self.name, flagged=False, scores={"violence": 0.0}) for _ in texts]


def test_free_text_moderation_sends_no_personal_data_to_remote_providers():
    """`/v1/moderations` and `arbiter safety eval` moderate through `SafetyLayer.moderate`. It used to hand the
    original text to every provider, so a remote one received the e-mail address and card number that the
    decision path keeps in the process; now they get the redacted text, and the local providers the original."""
    from safety.moderation.chain import Moderator

    remote = _RecordingRemote()
    layer = SafetyLayer(LAYER.rulesets, Moderator(remote, LAYER.moderator.fallback, LAYER.moderator.detectors),
                        LAYER.policy)
    text = "I will stab you tomorrow. Card 4111 1111 1111 1111, mail jo.smith@example.com"
    [report] = layer.moderate([text])
    assert remote.seen and "jo.smith" not in " ".join(remote.seen) and "4111" not in " ".join(remote.seen)
    assert "[EMAIL]" in remote.seen[0] and "[CARD]" in remote.seen[0]
    # The local detectors that ran beside it (the harm fallback does not: the remote provider answered) read
    # the original text: their scores are those of the original.
    [original] = LAYER.moderator.moderate([text])
    local = _scores(r for r in report.results if r.provider != "remote")
    assert local and local == {k: v for k, v in _scores(original.results).items() if k in local}
