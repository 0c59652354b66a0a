"""The OpenAI-compatible endpoint, driven by the official `openai` SDK against the app."""

from __future__ import annotations

import openai
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Decision, ReviewItem
from tests.app.scripted import install_backend


@pytest.fixture
def scripted(serving_app, tiny_causal_lm):
    return install_backend(serving_app, tiny_causal_lm)


@pytest.fixture
def sdk(serving_app, make_key):
    http = TestClient(serving_app)
    with http:
        yield lambda role="app": openai.OpenAI(api_key=make_key(role), base_url="http://testserver/v1", http_client=http, max_retries=0)


def test_completion_through_the_sdk(sdk, engine):
    result = sdk().chat.completions.create(model="arbiter", messages=[{"role": "user", "content": "Where is my parcel?"}],
                                           max_tokens=8, temperature=0)
    assert result.object == "chat.completion" and result.choices[0].finish_reason == "stop"
    assert isinstance(result.choices[0].message.content, str) and result.model == "arbiter"
    with Session(engine) as s:
        [row] = s.exec(select(Decision)).all()
    assert row.decision_type == "content" and row.id in result.id and row.output == result.choices[0].message.content


def test_pii_in_the_reply_is_redacted_and_queued_for_review(sdk, scripted, engine):
    scripted.reply = "Sure, write to jo.smith@example.com or call +1 415 555 0100."
    result = sdk().chat.completions.create(model="arbiter", messages=[{"role": "user", "content": "How can I contact support?"}])
    text = result.choices[0].message.content
    assert "jo.smith@example.com" not in text and "[EMAIL]" in text
    with Session(engine) as s:
        [item] = s.exec(select(ReviewItem)).all()
    # Reviewers see the reply with its personal data replaced (issue 15: nothing stored keeps it).
    assert item.content == "Sure, write to [EMAIL] or call [PHONE]." and any(r["code"] == "no-pii" for r in item.reasons)


def test_forbidden_reply_is_filtered(sdk, scripted):
    scripted.reply = "This is a risk-free investment with guaranteed returns."
    result = sdk().chat.completions.create(model="arbiter", messages=[{"role": "user", "content": "Should I invest?"}])
    assert result.choices[0].finish_reason == "content_filter" and "guaranteed" not in result.choices[0].message.content


def test_streaming(sdk, scripted):
    scripted.reply = "Your parcel ships today."
    stream = sdk().chat.completions.create(model="arbiter", messages=[{"role": "user", "content": "Parcel?"}], stream=True)
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Your parcel ships today."
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_sdk_sees_auth_errors(sdk):
    with pytest.raises(openai.PermissionDeniedError):
        sdk("annotator").chat.completions.create(model="arbiter", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.UnprocessableEntityError):
        sdk().chat.completions.create(model="arbiter", messages=[{"role": "assistant", "content": "hi"}])


def test_personal_data_in_the_prompt_never_reaches_policy_or_log(sdk, scripted, engine):
    seen = []
    original = scripted.generate

    def spy(prompts, **kwargs):
        seen.extend(prompts)
        return original(prompts, **kwargs)

    scripted.generate = spy
    sdk().chat.completions.create(model="arbiter", messages=[{"role": "user", "content": "Refund me, my email is ann@example.com"}])
    assert seen and "ann@example.com" not in seen[0] and "[EMAIL]" in seen[0]
    with Session(engine) as s:
        [row] = s.exec(select(Decision)).all()
    assert "ann@example.com" not in str(row.context)
