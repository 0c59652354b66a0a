"""The OpenAI moderation provider against a loopback server speaking the real wire format, with
the real `openai` SDK client: success is parsed, and every failure falls back to local providers
with the provenance recorded in the report and in the final verdict."""

from __future__ import annotations

import time

import pytest

from safety import SafetyLayer, shipped_rulesets
from safety.moderation import (
    Moderator,
    OpenAIModeration,
    OpenAIModerationConfig,
    ProviderError,
)


def openai_provider(api, timeout_s: float = 5.0) -> OpenAIModeration:
    return OpenAIModeration(
        OpenAIModerationConfig(api_key="sk-test", base_url=api.base_url, timeout_s=timeout_s)
    )


def test_flagged_response_is_parsed_with_real_category_names(moderation_api):
    moderation_api.flags = {"harassment/threatening": 0.93, "violence": 0.71}
    results = openai_provider(moderation_api).classify(["I will find you", "hello"])

    assert len(results) == 2
    assert results[0].provider == "openai"
    assert results[0].categories == ("harassment/threatening", "violence")
    assert results[0].scores["harassment/threatening"] == pytest.approx(0.93)
    request = moderation_api.requests[-1]
    assert request["body"] == {"model": "omni-moderation-latest", "input": ["I will find you", "hello"]}
    assert request["auth"] == "Bearer sk-test"


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("500", "http"), ("timeout", "timeout"), ("malformed", "malformed")],
)
def test_failures_map_to_typed_provider_errors(moderation_api, mode, kind):
    moderation_api.mode = mode
    with pytest.raises(ProviderError) as excinfo:
        openai_provider(moderation_api, timeout_s=0.3).classify(["hello"])
    assert excinfo.value.provider == "openai"
    assert excinfo.value.kind == kind


def test_connection_refused_is_a_connection_error():
    # Port 9 on loopback: nothing listens there, so the connection is refused at once.
    provider = OpenAIModeration(OpenAIModerationConfig(api_key="sk-test", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ProviderError) as excinfo:
        provider.classify(["hello"])
    assert excinfo.value.kind == "connection"


@pytest.mark.parametrize("mode", ["500", "timeout", "malformed"])
def test_moderator_falls_back_to_local_providers(moderation_api, harm_classifier, profanity, injection, mode):
    moderation_api.mode = mode
    moderator = Moderator(
        openai_provider(moderation_api, timeout_s=0.3), [harm_classifier, profanity], [injection]
    )

    started = time.monotonic()
    reports = moderator.moderate(["you are a worthless idiot", "where is my parcel"])
    elapsed = time.monotonic() - started

    assert elapsed < 1.5  # the client timeout, not the server's delay, bounds the wait
    rude, polite = reports
    assert rude.fallback and polite.fallback
    assert rude.decided_by == ("harm-classifier", "profanity", "injection-heuristics")
    assert rude.errors and rude.errors[0].startswith("openai:")
    assert {r.provider for r in rude.results} == {"harm-classifier", "profanity", "injection-heuristics"}
    assert rude.flagged and not polite.flagged


def test_moderator_uses_primary_when_it_answers(moderation_api, harm_classifier, injection):
    moderation_api.flags = {"violence": 0.95}
    moderator = Moderator(openai_provider(moderation_api), [harm_classifier], [injection])
    (report,) = moderator.moderate(["where is my parcel"])
    # The local classifier would call this safe; that it is flagged proves OpenAI decided.
    assert report.decided_by == ("openai", "injection-heuristics")
    assert not report.fallback and not report.errors
    assert [r.categories for r in report.results if r.provider == "openai"] == [("violence",)]


def test_every_harm_provider_down_raises(moderation_api):
    moderation_api.mode = "500"
    moderator = Moderator(openai_provider(moderation_api), fallback=[])
    with pytest.raises(ProviderError) as excinfo:
        moderator.moderate(["hello"])
    assert excinfo.value.kind == "unavailable"


def test_verdict_records_fallback_provenance(moderation_api, harm_classifier, profanity, injection):
    moderation_api.mode = "timeout"
    moderator = Moderator(
        openai_provider(moderation_api, timeout_s=0.3), [harm_classifier, profanity], [injection]
    )
    layer = SafetyLayer(shipped_rulesets(), moderator)

    verdict = layer.check_output("content", text="shut up you pathetic loser")

    assert verdict.fallback is True
    assert verdict.moderation_decided_by[0] == "harm-classifier"
    assert any("openai: timeout" in e for e in verdict.errors)
    flagged_by = {r.provider for r in verdict.reasons if r.source == "moderation"}
    assert flagged_by and "openai" not in flagged_by
    assert verdict.to_dict()["fallback"] is True


def test_verdict_from_primary_flag(moderation_api, harm_classifier):
    moderation_api.flags = {"violence": 0.97}
    layer = SafetyLayer(shipped_rulesets(), Moderator(openai_provider(moderation_api), [harm_classifier]))
    verdict = layer.check_output("content", text="a gruesome description")
    assert verdict.outcome == "block"
    assert [(r.provider, r.category) for r in verdict.reasons] == [("openai", "violence")]
    assert verdict.fallback is False
