"""`arbiter_moderation_fallbacks_total` counts a fallback by the provider that failed and its error kind
(issue 21.7b). Before, one failed OpenAI call counted once for every local provider that answered instead
(`provider="harm-classifier"`, `provider="profanity"`, ...) and never named OpenAI or why it failed."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from app.models import Decision
from app.services.serving.decisions import record_decision_metrics
from safety.moderation import Moderator, OpenAIModeration, OpenAIModerationConfig
from safety.verdict import combine
from tests.safety.conftest import injection, moderation_api, profanity  # noqa: F401 - fixtures

METRIC = "arbiter_moderation_fallbacks_total"


def _samples() -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in REGISTRY.collect():
        if family.name + "_total" == METRIC or family.name == METRIC:
            for s in family.samples:
                if s.name == METRIC:
                    out[tuple(sorted(s.labels.items()))] = s.value
    return out


def _record(reports) -> None:
    verdicts = [combine(stage="output", decision_type="t", moderation=r, text="x") for r in reports]
    record_decision_metrics(Decision(decision_type="t", safety_verdict="allow", latency_ms=1.0), verdicts, "p")


@pytest.mark.parametrize(("mode", "kind"), [("500", "http"), ("timeout", "timeout"), ("malformed", "malformed")])
def test_fallback_counted_by_the_failed_provider_and_error_kind(moderation_api, profanity, injection, mode, kind):  # noqa: F811
    moderation_api.mode = mode
    primary = OpenAIModeration(OpenAIModerationConfig(api_key="sk-test", base_url=moderation_api.base_url, timeout_s=0.3))
    moderator = Moderator(primary, [profanity], [injection])
    before = _samples()
    reports = moderator.moderate(["you idiot", "where is my parcel"])  # one API call for both texts
    assert reports[0].fell_back_from == (("openai", kind),)
    _record(reports)
    after = _samples()
    grew = {labels: after[labels] - before.get(labels, 0.0) for labels in after if after[labels] != before.get(labels, 0.0)}
    assert grew == {(("kind", kind), ("provider", "openai")): 2.0}  # one per checked text, none per local provider


def test_no_fallback_counts_nothing(moderation_api, profanity, injection):  # noqa: F811
    primary = OpenAIModeration(OpenAIModerationConfig(api_key="sk-test", base_url=moderation_api.base_url))
    before = _samples()
    _record(Moderator(primary, [profanity], [injection]).moderate(["hello"]))
    _record(Moderator(None, [profanity], [injection]).moderate(["hello"]))  # local only: nothing failed
    assert _samples() == before
