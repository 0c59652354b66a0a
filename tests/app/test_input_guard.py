"""Hostile input gets a clear 422, the same on SQLite and PostgreSQL, and nothing is written.

Each case is valid JSON (or a valid URL) that used to answer 500: a lone surrogate made the tokenizer raise
(and, outside the prompt, the decision was committed before its response failed to encode), NUL and
non-finite numbers made PostgreSQL refuse the row, and 64-bit overflows made both stores raise.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from app.input_values import find_hostile
from app.models import Decision, ReviewItem

TICKET = '{"subject": "Charged twice", "body": "My card was charged twice.", "customer": {"tier": "standard"}%s}'


@pytest.fixture
def api(serving_app):
    with TestClient(serving_app, raise_server_exceptions=False) as c:
        yield c


def _count(engine, table) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(table)).one()


@pytest.mark.both_databases
@pytest.mark.parametrize("extra,where,needle", [
    (', "note": "\\udfff"', "body.context.note", "lone surrogate"),
    (', "subject": "\\ud800"', "body.context.subject", "lone surrogate"),
    (', "note": "a\\u0000b"', "body.context.note", "NUL"),
    (', "score": NaN', "body.context.score", "finite"),
    (', "score": -Infinity', "body.context.score", "finite"),
    (', "score": 1e309', "body.context.score", "finite"),
    (', "n": 9223372036854775808', "body.context.n", "64-bit"),
    (', "n": -9223372036854775809', "body.context.n", "64-bit"),
    (', "n": 1' + "0" * 5000, "body.context.n", "64-bit"),
    (', "k\\ud800": 1', "body.context.k\\ud800", "lone surrogate"),
])
def test_hostile_context_is_422_and_writes_nothing(api, auth, engine, extra, where, needle):
    body = '{"context": ' + TICKET % extra + "}"
    r = api.post("/v1/decisions/ticket-routing", content=body.encode(), headers={**auth("app"), "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_input" and error["message"].startswith(where + ":") and needle in error["message"]
    assert _count(engine, Decision) == 0


@pytest.mark.both_databases
def test_nul_in_an_escalated_decision_is_refused_before_anything_is_stored(api, auth, engine):
    """A refund above 1000 to billing escalates to review (the setup of test_decisions'
    test_large_refund_to_billing_escalates_to_review); with a NUL in it, PostgreSQL refused the row with a 500."""
    full = {team: {"load": 10, "capacity": 10} for team in ("technical", "account", "shipping", "sales", "legal")}
    ctx = {"subject": "Refund", "body": "Refund me now\x00", "customer": {"tier": "vip"}, "refund_amount": 5000,
           "teams": {**full, "billing": {"load": 1, "capacity": 10}}}
    r = api.post("/v1/decisions/ticket-routing", json={"context": ctx}, headers=auth("app"))
    assert r.status_code == 422 and "body.context.body" in r.json()["error"]["message"] and "NUL" in r.json()["error"]["message"]
    assert api.post("/v1/decisions/ticket-routing", json={"context": {**ctx, "body": "Refund me now"}},
                    headers=auth("app")).json()["safety"]["verdict"] == "escalate"
    assert _count(engine, Decision) == 1 and _count(engine, ReviewItem) == 1


@pytest.mark.both_databases
@pytest.mark.parametrize("url", [
    "/v1/audit?after=9223372036854775808",
    "/v1/audit?after=2147483648",
    "/v1/audit?after=99999999999999999999999",
    "/v1/review/items?offset=9223372036854775808",
    "/v1/review/items?decision_type=a%00b",
    "/v1/decisions/a%00b",
])
def test_out_of_range_offsets_and_nul_in_urls_are_422(api, auth, url):
    r = api.get(url, headers=auth("admin"))
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_input"


@pytest.mark.both_databases
def test_largest_offsets_are_served(api, auth):
    """The bounds are the store's own: the largest offset and sequence number are valid (empty) pages on both."""
    for url in ("/v1/audit?after=2147483647", "/v1/review/items?offset=9223372036854775807"):
        r = api.get(url, headers=auth("admin"))
        assert r.status_code == 200 and r.json() == [], r.text


def test_chat_seed_out_of_range_is_422(api, auth):
    body = '{"messages": [{"role": "user", "content": "hi"}], "seed": 18446744073709551616}'
    r = api.post("/v1/chat/completions", content=body.encode(), headers={**auth("app"), "Content-Type": "application/json"})
    assert r.status_code == 422 and "body.seed" in r.json()["error"]["message"]


def test_benign_bodies_pass_untouched(api, auth):
    """Escaped backslashes, valid surrogate pairs (an emoji), big but legal numbers and the word NaN are fine."""
    ctx = ('{"subject": "NaN \\\\ud800 \\ud83d\\ude00", "body": "Infinity and 1e308", "customer": {"tier": "vip"},'
           ' "n": 9223372036854775807, "x": 1.5e300}')
    r = api.post("/v1/decisions/ticket-routing", content=('{"context": ' + ctx + "}").encode(),
                 headers={**auth("app"), "Content-Type": "application/json"})
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("value,found", [
    ({"a": [1, {"b": "\ud800"}]}, (("a", 1, "b"), "lone surrogate")),
    ({"a": float("nan")}, (("a",), "finite")),
    ({"a": 2**63}, (("a",), "64-bit")),
    ({"a": True, "b": None, "c": -(2**63), "d": "ok \U0001F600"}, None),
])
def test_find_hostile(value, found):
    result = find_hostile(value)
    if found is None:
        assert result is None
    else:
        assert result[0] == found[0] and found[1] in result[1]


@pytest.mark.both_databases
@pytest.mark.parametrize("note", ["\udfff", "a\x00b", float("nan")])
def test_decide_behind_the_guard_writes_nothing_it_cannot_answer(serving_app, engine, note):
    """Second line, for callers of decide() that bypass the HTTP guard (the CLI, jobs): a value the response or
    PostgreSQL cannot carry is refused before the row is written. Before, SQLite committed the row and the
    response then failed to encode (500), while PostgreSQL failed on the insert: two different outcomes."""
    import asyncio

    from app.errors import InvalidInput
    from app.services.serving.decisions import decide

    serving = serving_app.state.serving
    ctx = {"subject": "Charged twice", "body": "My card was charged twice.", "customer": {"tier": "standard"}, "note": note}
    with pytest.raises(InvalidInput, match="context.note: "):
        asyncio.run(decide(engine, serving.runtime, serving.safety, "ticket-routing", ctx))
    assert _count(engine, Decision) == 0 and _count(engine, ReviewItem) == 0


@pytest.mark.both_databases
def test_a_decision_that_cannot_be_answered_is_not_stored(serving_app, engine, monkeypatch):
    """The last line: whatever produced it (here a policy whose probabilities came out NaN), a decision whose
    response cannot be encoded as JSON is refused inside its transaction, before the commit."""
    import asyncio

    from app.errors import InvalidInput
    from app.services.serving.decisions import decide
    from policies.action_policy import ActionPolicy

    serving = serving_app.state.serving
    original = ActionPolicy.decide_from_scores

    def nan_propensity(self, *args, **kwargs):
        decision = original(self, *args, **kwargs)
        return type(decision)(**{**decision.__dict__, "propensity": float("nan")})

    monkeypatch.setattr(ActionPolicy, "decide_from_scores", nan_propensity)
    ctx = {"subject": "Charged twice", "body": "My card was charged twice.", "customer": {"tier": "standard"}}
    with pytest.raises(InvalidInput, match="nothing was stored"):
        asyncio.run(decide(engine, serving.runtime, serving.safety, "ticket-routing", ctx))
    assert _count(engine, Decision) == 0
