"""The guard-model provider against a loopback vLLM stand-in, with the real `openai` SDK client:
each family's request and answer format, the mapping onto OpenAI's categories, and every failure
falling back to the next provider with the reason in the report and the verdict."""

from __future__ import annotations

import math

import pytest

from safety import SafetyLayer, shipped_rulesets
from safety.moderation import Moderator, OpenAIModeration, OpenAIModerationConfig, ProviderError
from safety.moderation.guard import GuardModeration, GuardModerationConfig
from tests.safety.fake_vllm import Answer, serve_fake_vllm


@pytest.fixture
def vllm():
    with serve_fake_vllm() as state:
        yield state


def guard(api, family: str = "llama-guard", timeout_s: float = 5.0, **kwargs) -> GuardModeration:
    model = {"llama-guard": "meta-llama/Llama-Guard-3-8B", "qwen3guard": "Qwen/Qwen3Guard-Gen-4B",
             "granite-guardian": "ibm-granite/granite-guardian-3.2-5b"}[family]
    return GuardModeration(GuardModerationConfig(api.base_url, model, family=family, api_key="vllm-key",
                                                 timeout_s=timeout_s, **kwargs))


# ---------------------------------------------------------------- Llama Guard 3


def test_llama_guard_request_is_the_conversation_and_asks_for_logprobs(vllm):
    guard(vllm).classify(["How do I reset my password?"])
    [request] = vllm.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer vllm-key"
    body = request["body"]
    # The model's own chat template (applied by vLLM) builds the S1-S14 policy prompt around the
    # conversation, so the client sends the conversation itself, greedy, with the label's logprobs.
    assert body["model"] == "meta-llama/Llama-Guard-3-8B"
    assert body["messages"] == [{"role": "user", "content": "How do I reset my password?"}]
    assert body["temperature"] == 0 and body["logprobs"] is True and body["top_logprobs"] == 5
    assert "chat_template_kwargs" not in body


def test_llama_guard_hazards_map_onto_openai_categories(vllm):
    """S1 (violent crimes) is OpenAI's violence and illicit/violent (with its parent illicit), S10
    is hate. The label token says unsafe with probability 0.8 against safe 0.2 (of the label mass
    0.8 + 0.2), so each named category scores 0.8 and every other category 0."""
    vllm.answers["I will burn their mosque down"] = Answer("\n\nunsafe\nS1,S10", {"unsafe": 0.8, "safe": 0.2})
    vllm.answers["Thanks, the parcel arrived"] = Answer("\n\nsafe", {"safe": 0.97, "unsafe": 0.03})
    threat, thanks = guard(vllm).classify(["I will burn their mosque down", "Thanks, the parcel arrived"])

    assert threat.provider == "llama-guard" and threat.flagged
    assert threat.categories == ("hate", "illicit", "illicit/violent", "violence")
    assert threat.scores["violence"] == pytest.approx(0.8) and threat.scores["hate"] == pytest.approx(0.8)
    assert threat.scores["sexual"] == 0.0 and threat.scores["privacy"] == 0.0
    # Safe: no category named, so every category carries the only thing said, P(unsafe) = 0.03.
    assert not thanks.flagged and thanks.categories == ()
    assert all(s == pytest.approx(0.03) for s in thanks.scores.values()) and len(thanks.scores) == 13


def test_llama_guard_hazards_without_an_openai_category_keep_their_own_name(vllm):
    vllm.answers["Which candidate should I vote for?"] = Answer("unsafe\nS13", {"unsafe": 0.6, "safe": 0.4})
    [result] = guard(vllm).classify(["Which candidate should I vote for?"])
    assert result.categories == ("elections",)


def test_without_logprobs_the_answer_is_the_score(vllm):
    vllm.mode = "no-logprobs"
    vllm.answers["how to make a pipe bomb"] = Answer("unsafe\nS9", {"unsafe": 0.9, "safe": 0.1})
    [result] = guard(vllm).classify(["how to make a pipe bomb"])
    assert result.categories == ("illicit", "illicit/violent") and result.scores["illicit/violent"] == 1.0


# ---------------------------------------------------------------- Qwen3Guard


def test_qwen3guard_unsafe_and_controversial(vllm):
    """P(Unsafe) + P(Controversial)/2: 0.7 + 0.2/2 = 0.8 for the first text, 0.1 + 0.8/2 = 0.5 for
    the second. Controversial counts as unsafe in Qwen's strict mode (the default) only."""
    vllm.answers["kill them all"] = Answer(
        "Safety: Unsafe\nCategories: Violent", {"Unsafe": 0.7, "Controversial": 0.2, "Safe": 0.1}
    )
    vllm.answers["those people are all lazy"] = Answer(
        "Safety: Controversial\nCategories: Unethical Acts", {"Controversial": 0.8, "Unsafe": 0.1, "Safe": 0.1}
    )
    vllm.answers["hello"] = Answer("Safety: Safe\nCategories: None", {"Safe": 0.95, "Unsafe": 0.05})
    violent, lazy, hello = guard(vllm, "qwen3guard").classify(["kill them all", "those people are all lazy", "hello"])

    assert violent.categories == ("violence",) and violent.scores["violence"] == pytest.approx(0.8)
    assert lazy.categories == ("harassment", "hate") and lazy.scores["hate"] == pytest.approx(0.5)
    assert not hello.flagged and max(hello.scores.values()) == pytest.approx(0.05)
    assert "chat_template_kwargs" not in vllm.requests[0]["body"]

    [loose] = guard(vllm, "qwen3guard", controversial_flags=False).classify(["those people are all lazy"])
    assert not loose.flagged and loose.scores["hate"] == pytest.approx(0.5)


# ---------------------------------------------------------------- Granite Guardian


def test_granite_guardian_asks_one_risk_per_request(vllm):
    """Granite names the risk in the template argument guardian_config; P(risk) is P(Yes) over
    Yes + No: 0.9 / (0.9 + 0.1) for social bias. "harm" is the umbrella risk, a category of its own."""
    text = "women are too emotional to lead"
    vllm.default = Answer("No", {"No": 0.98, "Yes": 0.02})
    vllm.answers[(text, "social_bias")] = Answer("Yes", {"Yes": 0.9, "No": 0.1})
    vllm.answers[(text, "harm")] = Answer("<score> yes </score>", {"yes": 0.7, "no": 0.3})
    [result] = guard(vllm, "granite-guardian").classify([text])

    risks = sorted(r["body"]["chat_template_kwargs"]["guardian_config"]["risk_name"] for r in vllm.requests)
    assert risks == ["harm", "sexual_content", "social_bias", "unethical_behavior", "violence"]
    assert all(r["body"]["messages"] == [{"role": "user", "content": text}] for r in vllm.requests)
    assert result.categories == ("harm", "hate")
    assert result.scores == pytest.approx(
        {"harm": 0.7, "hate": 0.9, "violence": 0.02, "sexual": 0.02, "illicit": 0.02}
    )


# ---------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("mode", "kind"),
    [("500", "http"), ("timeout", "timeout"), ("malformed", "malformed"), ("not-a-completion", "malformed")],
)
def test_failures_map_to_typed_provider_errors(vllm, mode, kind):
    vllm.mode = mode
    with pytest.raises(ProviderError) as excinfo:
        guard(vllm, timeout_s=0.3).classify(["hello", "world"])
    assert excinfo.value.provider == "llama-guard" and excinfo.value.kind == kind


@pytest.mark.parametrize(
    "content",
    ["unsafe", "unsafe\nS99", "Safe.", "safe-ish"],
)
def test_answers_outside_the_format_are_malformed(vllm, content):
    vllm.default = Answer(content)
    with pytest.raises(ProviderError) as excinfo:
        guard(vllm).classify(["text with jo@example.com"])
    assert excinfo.value.kind == "malformed"
    # The error goes into verdicts and logs: it must not carry the answer (which might echo the text).
    assert "jo@example.com" not in str(excinfo.value) and content not in excinfo.value.message


def test_first_failure_cancels_the_requests_not_yet_sent(vllm):
    """One request at a time and the server failing: the first answer fails the batch, so at most
    the request a worker had already picked up follows it; the other texts are never sent."""
    vllm.mode = "500"
    with pytest.raises(ProviderError):
        guard(vllm, max_concurrency=1).classify([f"text {i}" for i in range(6)])
    assert 1 <= len(vllm.requests) <= 2


def test_connection_refused_is_a_connection_error():
    provider = GuardModeration(GuardModerationConfig("http://127.0.0.1:9/v1", "meta-llama/Llama-Guard-3-8B"))
    with pytest.raises(ProviderError) as excinfo:
        provider.classify(["hello"])
    assert excinfo.value.kind == "connection"


@pytest.mark.parametrize(("mode", "kind"), [("500", "http"), ("timeout", "timeout"), ("malformed", "malformed")])
def test_failed_guard_falls_back_to_openai_then_records_why(vllm, moderation_api, harm_classifier, injection,
                                                            mode, kind):
    vllm.mode = mode
    moderation_api.flags = {"violence": 0.95}
    openai = OpenAIModeration(OpenAIModerationConfig(api_key="sk-test", base_url=moderation_api.base_url))
    moderator = Moderator([guard(vllm, timeout_s=0.3), openai], [harm_classifier], [injection])

    (report,) = moderator.moderate(["where is my parcel"])

    # "timeout": the client's 0.3 s gave up before the server's 1.5 s answer.
    assert report.decided_by == ("openai", "injection-heuristics") and report.fallback
    assert len(report.errors) == 1 and report.errors[0].startswith(f"llama-guard: {kind}: ")
    assert [r.categories for r in report.results if r.provider == "openai"] == [("violence",)]


def test_guard_and_openai_down_local_providers_decide_and_the_verdict_says_why(
    vllm, moderation_api, harm_classifier, profanity, injection
):
    vllm.mode = "500"
    moderation_api.mode = "500"
    openai = OpenAIModeration(OpenAIModerationConfig(api_key="sk-test", base_url=moderation_api.base_url))
    moderator = Moderator([guard(vllm), openai], [harm_classifier, profanity], [injection])
    layer = SafetyLayer(shipped_rulesets(), moderator)

    verdict = layer.check_output("content", text="shut up you pathetic loser")

    assert verdict.fallback and verdict.moderation_decided_by[0] == "harm-classifier"
    assert any(e.startswith("llama-guard: http: status 500") for e in verdict.errors)
    assert any(e.startswith("openai: http: status 500") for e in verdict.errors)


def test_guard_answer_becomes_the_verdict(vllm, harm_classifier):
    """0.95 reaches the default block_at (0.9): a guard flag that sure blocks, as OpenAI's would."""
    vllm.default = Answer("unsafe\nS1", {"unsafe": 0.95, "safe": 0.05})
    layer = SafetyLayer(shipped_rulesets(), Moderator(guard(vllm), [harm_classifier]))
    verdict = layer.check_output("content", text="a detailed plan to hurt someone")
    assert verdict.outcome == "block" and not verdict.fallback
    assert {(r.provider, r.category) for r in verdict.reasons} == {
        ("llama-guard", "violence"), ("llama-guard", "illicit"), ("llama-guard", "illicit/violent")
    }


def test_label_probability_normalises_over_the_labels_seen():
    """exp(-0.1) = 0.905 for "unsafe" and exp(-2.5) = 0.082 for "safe" (the rest of the mass went to
    other tokens): P(unsafe) = 0.905 / (0.905 + 0.082) = 0.917. "unsafe" splits as "uns"+"afe" in
    some vocabularies: "uns" starts only "unsafe", so it counts for it."""
    from safety.moderation.guard_formats import label_probabilities

    top = [{"token": "uns", "logprob": -0.1}, {"token": "safe", "logprob": -2.5}, {"token": "I", "logprob": -3.0}]
    probs = label_probabilities([{"token": "\n\n", "top_logprobs": []}, {"token": "uns", "top_logprobs": top}],
                                ("safe", "unsafe"))
    expected = math.exp(-0.1) / (math.exp(-0.1) + math.exp(-2.5))
    assert probs == pytest.approx({"unsafe": expected, "safe": 1 - expected})
    assert label_probabilities(None, ("safe", "unsafe")) is None


# ---------------------------------------------------------------- wiring


def test_settings_put_the_guard_in_the_decision_paths_chain(vllm, tmp_path):
    from app.services.serving.stack import build_safety_layer
    from app.settings import Settings

    base = {"environment": "test", "var_dir": tmp_path}
    settings = Settings(**base, guard_base_url=vllm.base_url, guard_model="Qwen/Qwen3Guard-Gen-4B",
                        guard_family="qwen3guard", openai_api_key="sk-test", openai_base_url="http://127.0.0.1:9/v1")
    assert build_safety_layer(settings).moderator.providers[:2] == ("qwen3guard", "openai")
    reordered = settings.model_copy(update={"moderation_remote_order": "openai,guard"})
    assert build_safety_layer(reordered).moderator.providers[:2] == ("openai", "qwen3guard")
    assert "qwen3guard" not in build_safety_layer(Settings(**base)).moderator.providers

    with pytest.raises(ValueError, match="ARBITER_GUARD_MODEL"):
        Settings(**base, guard_base_url=vllm.base_url)
    with pytest.raises(ValueError, match="ARBITER_MODERATION_REMOTE_ORDER"):
        Settings(**base, moderation_remote_order="guard,azure")


def test_each_family_declares_the_languages_it_covers(vllm):
    """Language coverage credits a provider with the languages it declares: Llama Guard 3 was tuned
    on eight, Qwen3Guard on 119 (any), Granite Guardian on English."""
    assert {"en", "es", "th"} <= guard(vllm).languages and "ru" not in guard(vllm).languages
    assert guard(vllm, "qwen3guard").languages == frozenset({"*"})
    assert guard(vllm, "granite-guardian").languages == frozenset({"en"})
