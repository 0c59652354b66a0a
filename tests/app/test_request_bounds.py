"""What one request may cost: fields reach the prompt cut to their token budgets, a prompt over its type's
limit is refused before it can hold the model thread, and a generation is capped in tokens and time."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.models import Decision
from policies.backends.local import TransformersBackend
from policies.decision_types import PromptLimits
from tests.app.scripted import install_backend

TICKET = {"subject": "Charged twice", "body": "My card was charged twice.", "customer": {"tier": "standard", "language": "en"}}


@pytest.fixture
def api(serving_app):
    with TestClient(serving_app) as c:
        yield c


def _count(engine) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(Decision)).one()


class Recording(TransformersBackend):
    """The tiny model, recording every prompt it scores and the arguments of every generation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prompts: list[str] = []
        self.generations: list[dict] = []

    def completion_logprobs(self, prompts, completions):
        self.prompts.extend(prompts)
        return super().completion_logprobs(prompts, completions)

    def generate(self, prompts, **kwargs):
        self.generations.append(kwargs)
        return ["Thanks for writing!" for _ in prompts]


@pytest.fixture
def recording(serving_app, tiny_causal_lm):
    return install_backend(serving_app, tiny_causal_lm, Recording, name="recording")


def test_a_20kb_language_is_refused_by_the_schema(api, auth, engine):
    """A language tag is at most 35 characters: 20 KB of it is an error, not data (it held the server 136 s)."""
    ctx = {**TICKET, "customer": {"tier": "vip", "language": "x" * 20_000}}
    r = api.post("/v1/decisions/ticket-routing", json={"context": ctx}, headers=auth("app"))
    assert r.status_code == 422 and "customer/language" in r.json()["error"]["message"]
    assert _count(engine) == 0


def test_a_maximal_legal_ticket_is_served_with_a_bounded_prompt(api, auth, engine, recording):
    """Every field at its schema maximum, in the costliest characters: served, and the prompt the model scored
    is within the type's token limit (it would have been ~25,000 tokens uncut)."""
    ctx = {"subject": "\U0001F600" * 300, "body": "\u4e2d\u6587\U0001F600" * 2666,
           "customer": {"tier": "vip", "language": "\U0001F600" * 35}}
    r = api.post("/v1/decisions/ticket-routing", json={"context": ctx}, headers=auth("app"))
    assert r.status_code == 200, r.text
    [prompt] = set(recording.prompts)
    assert recording.count_tokens(prompt) <= 1024
    with Session(engine) as s:
        [row] = s.exec(select(Decision)).all()
    assert row.context["body"] == ctx["body"]  # the log keeps what was sent; only the prompt is cut


@pytest.mark.both_databases
def test_a_prompt_over_a_user_defined_limit_is_422_and_writes_nothing(api, auth, engine, serving_app, recording):
    """Limits are part of every decision type's config: here an operator's tighter ticket-routing."""
    runtime = serving_app.state.serving.runtime
    dt = runtime.decision_types["ticket-routing"]
    runtime.decision_types["ticket-routing"] = dt.model_copy(update={"limits": PromptLimits(max_field_tokens=64, max_prompt_tokens=120)})
    assert api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=auth("app")).status_code == 200
    long = {**TICKET, "body": "word " * 500}
    r = api.post("/v1/decisions/ticket-routing", json={"context": long}, headers=auth("app"))
    assert r.status_code == 422 and "limit is 120" in r.json()["error"]["message"], r.text
    assert _count(engine) == 1 and all(recording.count_tokens(p) <= 120 for p in recording.prompts)


def test_chat_generation_is_capped_in_tokens_and_time(api, auth, recording):
    r = api.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4096},
                 headers=auth("app"))
    assert r.status_code == 200, r.text
    [kwargs] = recording.generations
    assert kwargs["max_new_tokens"] == 512 and kwargs["max_time"] == 30


def test_chat_conversation_over_the_limit_is_refused(api, auth, engine, recording):
    """A conversation is not cut (that would change what was said): over the content type's 2048 tokens, 422."""
    messages = [{"role": "user", "content": "word " * 1000}, {"role": "assistant", "content": "ok"},
                {"role": "user", "content": "word " * 1500}]
    r = api.post("/v1/chat/completions", json={"messages": messages}, headers=auth("app"))
    assert r.status_code == 422 and "limit is 2048" in r.json()["error"]["message"], r.text
    huge = [{"role": "user", "content": "x" * 32_000}] * 3  # refused by length alone, never tokenised
    r = api.post("/v1/chat/completions", json={"messages": huge}, headers=auth("app"))
    assert r.status_code == 422 and "2048-token" in r.json()["error"]["message"]
    assert _count(engine) == 0 and recording.generations == []


def test_a_context_changed_after_validation_is_still_served(api, auth, engine, monkeypatch):
    """Redaction runs after validation and may lengthen a field past its schema's maxLength (a language tag
    redacted to "[PERSON]-..." was 37 characters); the prompt is built without validating again (was: 500)."""
    import app.services.serving.decisions as decisions

    real = decisions.redacted_context
    monkeypatch.setattr(decisions, "redacted_context",
                        lambda ctx, *args: {**real(ctx, *args), "customer": {**ctx["customer"], "language": "[PERSON]-" + "x" * 40}})
    r = api.post("/v1/decisions/ticket-routing", json={"context": TICKET}, headers=auth("app"))
    assert r.status_code == 200, r.text
    assert _count(engine) == 1
