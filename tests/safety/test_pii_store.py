"""Personal data never reaches the store, the audit log, logs, traces or metrics, whatever the verdict.

Tickets (`POST /v1/decisions/ticket-routing`) and content requests (`POST /v1/decisions/content` and
`/v1/chat/completions`) carrying e-mail addresses, phone numbers, a card, an IBAN, an SSN, a name and a
street address go through the real API for each verdict the layer can give: served after redaction,
masked, blocked, escalated (by a rule, and by a context the rules cannot read, whose error message
quotes the offending value). Then every row of every table the request could touch, the captured log
records of every logger, the OpenTelemetry spans and the Prometheus exposition are searched for each
piece of personal data.

Issue 15: `decide()` redacted only when the input verdict was exactly `redact`, and the shipped ticket
rule set had no PII rule, so an escalated or masked ticket kept its personal data in the decision row
and the review item.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.models import AuditEntry, Decision, Outcome, ReviewItem
from policies.backends.local import TransformersBackend
from safety.layer import SafetyLayer
from safety.rules import load_rulesets

# Each piece of personal data as written, and the forms a careless step could store it in.
PERSONAL = {
    "email": ["jo.smith@example.com"],
    "email-non-ascii": ["jürgen.weiß@gmx.de", "jurgen.weiss"],
    "email-written": ["john dot doe at gmail dot com"],
    "phone-uk": ["020 7946 0958", "2079460958"],
    "phone-de": ["0151 23456789", "15123456789"],
    "card": ["4111.1111.1111.1111", "4111111111111111", "4111 1111"],
    "iban": ["de89 3704 0044 0532 0130 00", "DE89370400440532013000", "3704 0044"],
    "ssn": ["536221847", "536-22-1847"],
    "name": ["Maria Garcia"],
    "address": ["221B Baker Street"],
}
BODY = (
    "Hi, this is Maria Garcia. My card 4111.1111.1111.1111 was charged twice; refund to IBAN "
    "de89 3704 0044 0532 0130 00. SSN: 536221847. Call 020 7946 0958 or mobile 0151 23456789, mail "
    "jo.smith@example.com, jürgen.weiß@gmx.de or john dot doe at gmail dot com. I live at 221B Baker Street."
)
REPLY = "Dear Maria Garcia, we will call you on 020 7946 0958 and write to jo.smith@example.com."


class EchoingBackend(TransformersBackend):
    """The tiny model, except that a generated reply repeats personal data (the policy may leak it too)."""

    def generate(self, prompts, **kwargs):
        return [REPLY for _ in prompts]


def _with_test_rules(src: Path, dst: Path) -> Path:
    """The shipped rule sets plus two input rules that block or escalate on a marker word."""
    dst.mkdir()
    for path in src.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        data["rules"] += [
            {"id": "test-block", "description": "test", "stage": "input",
             "when": {"field": "input.text", "contains_any": ["PLEASE-BLOCK"]}, "effect": "block"},
            {"id": "test-escalate", "description": "test", "stage": "input",
             "when": {"field": "input.text", "contains_any": ["PLEASE-ESCALATE"]}, "effect": "escalate"},
        ]
        (dst / path.name).write_text(yaml.safe_dump(data, allow_unicode=True))
    return dst


@pytest.fixture
def api(serving_app, tiny_causal_lm, tmp_path):
    model, tokenizer = tiny_causal_lm
    serving = serving_app.state.serving
    backend = EchoingBackend(model, tokenizer, name="echo")
    serving.runtime.backend_factory = lambda version: backend
    rules = _with_test_rules(Path(__file__).resolve().parents[2] / "safety" / "rulesets", tmp_path / "rules")
    serving.safety = SafetyLayer(load_rulesets(rules), serving.safety.moderator, serving.safety.policy)
    with TestClient(serving_app) as client:
        yield client


@pytest.fixture
def spans():
    """Every OpenTelemetry span ended during the test (an in-memory exporter on the global provider)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()


def _leaks(text: str) -> list[str]:
    folded = text.lower()
    return [f"{kind}: {form!r}" for kind, forms in PERSONAL.items() for form in forms if form.lower() in folded]


def _rows(engine) -> str:
    with Session(engine) as s:
        rows = [*s.exec(select(Decision)).all(), *s.exec(select(ReviewItem)).all(),
                *s.exec(select(AuditEntry)).all(), *s.exec(select(Outcome)).all()]
        return "\n".join(json.dumps(r.model_dump(), default=str, ensure_ascii=False) for r in rows)


TICKET = {"subject": "Charged twice, Maria Garcia", "body": BODY, "customer": {"tier": "standard", "language": "en"}}
CASES = [
    # (path, body, the verdict the decision must get)
    ("/v1/decisions/ticket-routing", {"context": TICKET}, "redact"),
    ("/v1/decisions/ticket-routing", {"context": {**TICKET, "body": BODY + " My lawyer will call."}}, "mask"),
    ("/v1/decisions/ticket-routing", {"context": {**TICKET, "body": BODY + " PLEASE-BLOCK"}}, "block"),
    ("/v1/decisions/ticket-routing", {"context": {**TICKET, "body": BODY + " PLEASE-ESCALATE"}}, "escalate"),
    # The rules cannot compare this load with a capacity: the rule error quotes the value and escalates.
    ("/v1/decisions/ticket-routing",
     {"context": {**TICKET, "teams": {"billing": {"load": "ring 020 7946 0958", "capacity": 3}}}}, "escalate"),
    ("/v1/decisions/content", {"context": {"message": BODY, "customer_name": "Maria Garcia"}}, "redact"),
    ("/v1/decisions/content", {"context": {"message": BODY + " PLEASE-BLOCK"}}, "block"),
    ("/v1/decisions/content", {"context": {"message": BODY + " PLEASE-ESCALATE"}}, "escalate"),
]


@pytest.mark.both_databases
def test_no_personal_data_anywhere_whatever_the_verdict(api, auth, engine, caplog, spans):
    caplog.set_level(logging.DEBUG)
    headers = auth("app")
    verdicts = []
    for path, body, expected in CASES:
        r = api.post(path, json=body, headers=headers)
        assert r.status_code == 200, r.text
        verdicts.append(r.json()["safety"]["verdict"])
        assert verdicts[-1] == expected, (path, r.json()["safety"])
        assert _leaks(json.dumps(r.json(), ensure_ascii=False)) == [], path  # the response neither
        decision_id = r.json()["id"]
        # An outcome with free-text feedback is stored too.
        feedback = {"note": "Maria Garcia says thanks, call back on 020 7946 0958"}
        assert api.post(f"/v1/decisions/{decision_id}/outcome", json={"reward": 1.0, "feedback": feedback},
                        headers=headers).status_code in (200, 201)
    for content, expected in ((BODY, "redact"), (BODY + " PLEASE-BLOCK", "block"), (BODY + " PLEASE-ESCALATE", "escalate")):
        r = api.post("/v1/chat/completions", headers=headers,
                     json={"model": "arbiter", "messages": [{"role": "user", "content": "Earlier: " + BODY},
                                                            {"role": "assistant", "content": REPLY},
                                                            {"role": "user", "content": content}]})
        assert r.status_code == 200, r.text
        assert r.json()["arbiter"]["safety_verdict"] == expected
    with Session(engine) as s:
        assert len(s.exec(select(ReviewItem)).all()) >= 5  # blocked and escalated ones are queued with their text
        assert any("[CARD]" in d.context.get("body", "") for d in s.exec(select(Decision)).all())
    # A reviewer's note and rewrite of an escalated reply are stored, audited and become labels.
    with Session(engine) as s:
        item = s.exec(select(ReviewItem).where(ReviewItem.decision_type == "content")).first()
    r = api.post(f"/v1/review/items/{item.id}/verdict", headers=auth("reviewer"),
                 json={"verdict": "edit", "category": "pii", "note": "she gave 0151 23456789",
                       "edited_content": "Dear Maria Garcia, we will write to jo.smith@example.com."})
    assert r.status_code == 200, r.text
    metrics = api.get("/metrics")
    where = {
        "store": _rows(engine),
        "logs": "\n".join(f"{r.name} {r.getMessage()} {r.__dict__.get('args')}" for r in caplog.records),
        "traces": "\n".join(json.dumps({"name": sp.name, "attributes": dict(sp.attributes or {}),
                                        "events": [dict(e.attributes or {}) for e in sp.events]}, default=str)
                            for sp in spans.get_finished_spans()),
        "metrics": metrics.text if metrics.status_code == 200 else "",
    }
    assert {name: _leaks(text) for name, text in where.items()} == {name: [] for name in where}
