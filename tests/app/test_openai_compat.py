"""The official `openai` SDK's common paths behave as against OpenAI: models list, streaming, model id, usage.

Before: `GET /v1/models` was 404, `stream=True` sent the whole answer in one chunk, `model="arbiter"`
came back as the policy's name, and `usage.prompt_tokens` counted words of the user's message.
The app serves the tiny model (SmolLM2's tokenizer and chat template); generation is scripted.
"""

from __future__ import annotations

import openai
import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import Decision
from tests.app.scripted import install_backend

USER = [{"role": "user", "content": "Where is my parcel? I ordered it on Monday."}]


@pytest.fixture
def scripted(serving_app, tiny_causal_lm):
    return install_backend(serving_app, tiny_causal_lm, reply="Your parcel ships today.")


@pytest.fixture
def sdk(serving_app, make_key):
    with TestClient(serving_app) as http:
        yield openai.OpenAI(api_key=make_key("app"), base_url="http://testserver/v1", http_client=http, max_retries=0)


def test_models_list_names_what_chat_accepts(sdk):
    assert [m.id for m in sdk.models.list()] == ["arbiter"]
    assert sdk.models.retrieve("arbiter").owned_by == "arbiter"
    with pytest.raises(openai.NotFoundError):
        sdk.models.retrieve("gpt-4o")


@pytest.mark.both_databases
def test_an_unknown_model_is_404_and_nothing_is_logged(sdk, scripted, engine):
    with pytest.raises(openai.NotFoundError) as err:
        sdk.chat.completions.create(model="gpt-4o", messages=USER)
    assert err.value.body["code"] == "model_not_found" and "arbiter" in err.value.body["message"]
    with Session(engine) as s:
        assert s.exec(select(Decision)).all() == []


@pytest.mark.both_databases
def test_model_is_echoed_and_usage_counts_the_templated_prompt(sdk, scripted, serving_app, tiny_causal_lm):
    """prompt_tokens: the decision type's system message and the user's, through SmolLM2's chat template, as
    the model reads them; completion_tokens: the reply's tokens (no special ones)."""
    _, tokenizer = tiny_causal_lm
    result = sdk.chat.completions.create(model="arbiter", messages=USER, max_tokens=8)
    assert result.model == "arbiter" and result.choices[0].message.content == scripted.reply
    system = serving_app.state.serving.runtime.decision_type("content").prompt.system
    prompt = tokenizer.apply_chat_template([{"role": "system", "content": system}, *USER], tokenize=False,
                                           add_generation_prompt=True)
    expected_prompt = len(tokenizer(text=prompt)["input_ids"])
    assert expected_prompt > 30  # the system message counts: far more than the 10 words of the message
    assert result.usage.prompt_tokens == expected_prompt
    assert result.usage.completion_tokens == len(tokenizer(text=scripted.reply, add_special_tokens=False)["input_ids"])
    assert result.usage.total_tokens == result.usage.prompt_tokens + result.usage.completion_tokens


@pytest.mark.parametrize("reply", ["Your parcel ships today, tracking number follows by email.",
                                   "Ça coûte 10 € — merci 🙂 !"])
def test_streaming_sends_one_chunk_per_token(sdk, scripted, tiny_causal_lm, reply):
    _, tokenizer = tiny_causal_lm
    scripted.reply = reply
    chunks = list(sdk.chat.completions.create(model="arbiter", messages=USER, stream=True,
                                              stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.model == "arbiter" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    contents = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert "".join(contents) == reply
    n_tokens = len(tokenizer(text=reply, add_special_tokens=False)["input_ids"])
    # one chunk per token; a token that ends inside a multi-byte character (the emoji) joins the next one
    assert n_tokens - 3 <= len(contents) <= n_tokens and len(contents) > len(reply.split())
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    usage = chunks[-1]
    assert usage.choices == [] and usage.usage.completion_tokens == n_tokens


def test_stream_ends_with_done_and_a_filtered_reply_streams_the_refusal(serving_app, scripted, make_key):
    scripted.reply = "This is a risk-free investment with guaranteed returns."
    with TestClient(serving_app) as http:
        r = http.post("/v1/chat/completions", headers={"Authorization": f"Bearer {make_key('app')}"},
                      json={"model": "arbiter", "messages": [{"role": "user", "content": "Should I invest?"}], "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = [line for line in r.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert "guaranteed" not in r.text and '"finish_reason": "content_filter"' in r.text
