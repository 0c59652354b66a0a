"""Arbiter <-> Argilla through the app layer: push with selection, pull into labels, the webhook
endpoint (signed deliveries, and a real delivery from Argilla's worker), faults, and the CLI.

Uses the session's embedded Argilla (`tests.labeling.live_argilla`) and the test store fixtures.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
import uvicorn
from sqlmodel import Session, func, select
from standardwebhooks.webhooks import Webhook

from app.db import session_scope
from app.errors import ArbiterError, Unavailable
from app.models import ArgillaPush, AuditEntry, Label
from app.services.argilla import embedded_config, open_client, register_webhook, store_webhook_secret
from app.services.labels.argilla_sync import dataset_spec, pull_labels, push_comparisons
from app.settings import get_settings
from labeling.argilla import ArgillaConnection, free_port, stop_embedded
from labeling.argilla.suggestions import SuggestionPolicy
from tests.app.factories import add_comparison
from tests.labeling.live_argilla import LiveArgilla

pytestmark = pytest.mark.argilla


def _seed(engine, n: int = 5) -> list[str]:
    """n comparisons; judge labels make #0 inconsistent, #1 disputed, #2..#n-1 scored by margin."""
    ids = []
    with session_scope(engine) as s:
        for i in range(n):
            c = add_comparison(s, f"Question {i}: how do I stay safe online?", f"Use strong passwords ({i}).",
                               f"Share your password ({i}).", a_hash=f"a{i}", b_hash=f"b{i}",
                               task_hash=f"t{i}-{uuid.uuid4().hex}", source="test")
            ids.append(c.id)
            margin = {2: 3.0, 3: 0.2, 4: 1.0}.get(i, 5.0)
            s.add(Label(comparison_id=c.id, choice="a", confidence=0.9, source="llm_judge", producer="judge-1",
                        judge="judge-1", details={"consistent": i != 0, "reward_margin": margin}))
            s.add(Label(comparison_id=c.id, choice="b" if i == 1 else "a", confidence=0.6, source="local_model",
                        producer="judge-2", judge="judge-2", details={"consistent": True}))
    return ids


def _count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


def _annotator(live: LiveArgilla) -> httpx.Client:
    return httpx.Client(base_url=f"{live.instance.url}/api/v1", timeout=30,
                        headers={"X-Argilla-Api-Key": live.instance.annotator.api_key})


def _records(http: httpx.Client, dataset: str) -> list[dict]:
    dataset_id = next(d["id"] for d in http.get("/me/datasets").json()["items"] if d["name"] == dataset)
    body = {"filters": {"and": [{"type": "terms", "scope": {"entity": "response", "property": "status"},
                                 "values": ["pending"]}]},
            "sort": [{"scope": {"entity": "metadata", "metadata_property": "priority"}, "order": "desc"}]}
    found = http.post(f"/me/datasets/{dataset_id}/records/search", params={"include": ["suggestions"], "limit": 100},
                      json=body).raise_for_status()
    return [item["record"] for item in found.json()["items"]]


def _answer(http: httpx.Client, record_id: str, choice: str | None, status: str = "submitted") -> dict:
    values = {"preference": {"value": choice}} if choice else {}
    response = http.post(f"/records/{record_id}/responses", json={"values": values, "status": status})
    assert response.status_code == 201, response.text
    return response.json()


def test_push_by_uncertainty_pull_and_update(engine, argilla_settings, live):
    ids = _seed(engine)
    client = open_client(ArgillaConnection(argilla_settings.argilla_api_url, argilla_settings.argilla_api_key))
    spec = dataset_spec(argilla_settings)

    # judge-1 is the more confident but kept 4 of its 5 verdicts when the responses were swapped (0.8);
    # judge-2 kept all 5. Only a judge at 0.9 or more, over 5 labels or more, may pre-select.
    strict = SuggestionPolicy(min_consistency=0.9, min_labels=5)
    first = push_comparisons(engine, client, spec, strategy="uncertainty", limit=3, suggestions=strict)
    assert (first.considered, first.selected, first.pushed) == (5, 3, 3)
    assert first.reasons == {"inconsistent": 1, "disagreement": 1, "small_margin": 1}
    assert _count(engine, ArgillaPush) == 3 and _count(engine, AuditEntry, AuditEntry.action == "argilla.pushed") == 1

    http = _annotator(live)
    queue = _records(http, spec.name)  # what an annotator sees, highest priority first
    assert [r["external_id"] for r in queue] == [ids[0], ids[1], ids[3]]  # inconsistent, disputed, margin 0.2
    assert queue[0]["fields"]["prompt"].startswith("Question 0")
    [suggestion] = queue[0]["suggestions"]
    assert (suggestion["value"], suggestion["agent"], suggestion["score"]) == ("a", "judge-2", 0.6)
    assert first.suggested == 3
    judges = queue[0]["fields"]["judges"]  # who said what, how sure, and why judge-1 is not pre-selected
    assert "**judge-1**: Response A, confidence 0.90 (changed when the responses were swapped)" in judges
    assert "not pre-selected: position consistency 0.80 < 0.90" in judges
    assert "**judge-2**: Response B, confidence 0.60" not in judges and "**pre-selected**" in judges

    # With the default thresholds (20 measured labels), neither judge is trusted yet: nothing pre-selected.
    second = push_comparisons(engine, client, spec, strategy="uncertainty", limit=10)
    assert (second.considered, second.pushed, second.already_present, second.suggested) == (2, 2, 0, 0)
    later = [r for r in _records(http, spec.name) if r["external_id"] in (ids[2], ids[4])]
    assert len(later) == 2 and all(not r["suggestions"] for r in later)
    assert all("position consistency measured on 5 label(s), fewer than 20" in r["fields"]["judges"] for r in later)
    assert _count(engine, ArgillaPush) == 5
    assert push_comparisons(engine, client, spec, limit=10).selected == 0  # nothing left: no duplicates

    by_id = {r["external_id"]: r["id"] for r in _records(http, spec.name)}
    first_answer = _answer(http, by_id[ids[0]], "b")
    _answer(http, by_id[ids[1]], None, status="discarded")
    pulled = pull_labels(engine, client, spec)
    assert (pulled.responses, pulled.created, pulled.updated, pulled.errors) == (2, 2, 0, [])
    with Session(engine) as s:
        human = {lb.comparison_id: lb for lb in s.exec(select(Label).where(Label.source == "human"))}
    assert human[ids[0]].choice == "b" and human[ids[0]].producer == "annotator"
    assert human[ids[1]].choice == "discarded"
    assert human[ids[0]].details["argilla_dataset"] == spec.name

    # Pulling again changes nothing; a changed answer updates the same row.
    assert pull_labels(engine, client, spec).unchanged == 2
    time.sleep(0.01)
    http.put(f"/responses/{first_answer['id']}",
             json={"values": {"preference": {"value": "tie"}}, "status": "submitted"}).raise_for_status()
    again = pull_labels(engine, client, spec)
    assert (again.created, again.updated, again.unchanged) == (0, 1, 1)
    with Session(engine) as s:
        rows = s.exec(select(Label).where(Label.source == "human", Label.comparison_id == ids[0])).all()
    assert len(rows) == 1 and rows[0].id == human[ids[0]].id and rows[0].choice == "tie"
    assert _count(engine, AuditEntry, AuditEntry.action == "labels.ingested") == 2


def test_unreachable_or_failing_argilla_marks_nothing_as_pushed(engine, argilla_settings, run_cli, monkeypatch):
    _seed(engine, 2)
    dead = ArgillaConnection(f"http://127.0.0.1:{free_port()}", "owner-key", timeout_s=3)
    with pytest.raises(Unavailable, match="unreachable"):
        open_client(dead)

    monkeypatch.setenv("ARBITER_ARGILLA_API_URL", dead.api_url)
    monkeypatch.setenv("ARBITER_ARGILLA_API_KEY", "owner-key")
    result = run_cli("argilla", "push", "--strategy", "uncertainty", "--limit", "2", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["code"] == "argilla_unavailable"

    # Reachable, but the push itself fails (no such workspace): still nothing recorded.
    live_client = open_client(ArgillaConnection(argilla_settings.argilla_api_url, argilla_settings.argilla_api_key))
    broken = dataset_spec(argilla_settings.model_copy(update={"argilla_workspace": "no-such-workspace"}))
    with pytest.raises(ArbiterError, match="does not exist"):
        push_comparisons(engine, live_client, broken, limit=2)
    assert _count(engine, ArgillaPush) == 0


def test_cli_push_pull_and_up_against_the_live_server(engine, argilla_settings, live, run_cli, monkeypatch):
    ids = _seed(engine, 3)
    for name, value in (("ARBITER_ARGILLA_API_URL", argilla_settings.argilla_api_url),
                        ("ARBITER_ARGILLA_API_KEY", argilla_settings.argilla_api_key),
                        ("ARBITER_ARGILLA_WORKSPACE", argilla_settings.argilla_workspace),
                        ("ARBITER_ARGILLA_DATASET", argilla_settings.argilla_dataset)):
        monkeypatch.setenv(name, value)
    pushed = json.loads(run_cli("argilla", "push", "--strategy", "uncertainty", "--limit", "2", "--json").stdout)
    assert pushed["pushed"] == 2 and pushed["reasons"] == {"inconsistent": 1, "disagreement": 1}
    http = _annotator(live)
    record = next(r for r in _records(http, argilla_settings.argilla_dataset) if r["external_id"] == ids[0])
    _answer(http, record["id"], "a")
    pulled = json.loads(run_cli("argilla", "pull", "--json").stdout)
    assert pulled["created"] == 1

    # `up` finds the running server (same data dir, port and Redis) instead of starting another.
    monkeypatch.setenv("ARBITER_VAR_DIR", str(live.config.data_dir.parent))
    monkeypatch.setenv("ARBITER_ARGILLA_PORT", str(live.config.port))
    monkeypatch.setenv("ARBITER_REDIS_URL", live.config.redis_url)
    get_settings.cache_clear()
    up = json.loads(run_cli("argilla", "up", "--json").stdout)
    if not up["already_running"]:  # a bug: do not leave a second server behind
        stop_embedded(embedded_config(get_settings()))
    assert up["already_running"] is True and up["url"] == live.instance.url
    assert up["annotator"]["username"] == "annotator" and up["annotator"]["password"]
    assert json.loads(run_cli("argilla", "status", "--json").stdout)["running"] is True


# ---------------------------------------------------------------------------- webhook endpoint


def _signed(secret: str, data: dict, event: str = "response.updated") -> tuple[bytes, dict]:
    now = datetime.now(UTC)
    msg_id = f"msg_{secrets.token_urlsafe(8)}"
    body = json.dumps({"type": event, "version": 1, "timestamp": now.isoformat(), "data": data})
    return body.encode(), {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                           "webhook-signature": Webhook(secret).sign(msg_id, now, body),
                           "content-type": "application/json"}


def _event(comparison_id: str, dataset: str, choice: str, updated_at: str, annotator: str = "ann") -> dict:
    return {"id": "r1", "status": "submitted", "values": {"preference": {"value": choice}},
            "updated_at": updated_at, "user": {"username": annotator},
            "record": {"id": "x", "external_id": comparison_id, "dataset": {"name": dataset}}}


def test_webhook_endpoint_verifies_and_applies(client, engine, settings):
    comparison = _seed(engine, 1)[0]
    secret = base64.b64encode(secrets.token_bytes(32)).decode()
    store_webhook_secret(settings, secret)
    dataset = settings.argilla_dataset
    url = "/v1/labeling/argilla/webhook"

    body, headers = _signed(secret, _event(comparison, dataset, "b", "2024-05-01T10:00:00"))
    forged = body.replace(b'"b"', b'"a"')
    rejected = client.post(url, content=forged, headers=headers)
    assert rejected.status_code == 401 and rejected.json()["error"]["code"] == "invalid_signature"
    assert _count(engine, Label, Label.source == "human") == 0  # nothing changed

    applied = client.post(url, content=body, headers=headers)
    assert applied.status_code == 200 and applied.json()["created"] == 1
    assert client.post(url, content=body, headers=headers).json()["unchanged"] == 1  # a retried delivery

    newer, newer_headers = _signed(secret, _event(comparison, dataset, "tie", "2024-05-01T11:00:00"))
    assert client.post(url, content=newer, headers=newer_headers).json()["updated"] == 1
    older, older_headers = _signed(secret, _event(comparison, dataset, "a", "2024-05-01T09:00:00"))
    assert client.post(url, content=older, headers=older_headers).json()["unchanged"] == 1  # late, stale
    with Session(engine) as s:
        labels = s.exec(select(Label).where(Label.source == "human")).all()
    assert [(lb.producer, lb.choice) for lb in labels] == [("ann", "tie")]

    other, other_headers = _signed(secret, _event(comparison, "someone-elses-dataset", "a", "2024-05-02T00:00:00"))
    assert client.post(url, content=other, headers=other_headers).json()["status"] == "ignored"
    unknown, unknown_headers = _signed(secret, _event("no-such-comparison", dataset, "a", "2024-05-02T00:00:00"))
    assert client.post(url, content=unknown, headers=unknown_headers).status_code == 404


def test_webhook_without_a_configured_secret_is_refused(client, engine):
    body, headers = _signed(base64.b64encode(b"x" * 32).decode(), {"id": "r"})
    response = client.post("/v1/labeling/argilla/webhook", content=body, headers=headers)
    assert response.status_code == 401


def test_real_argilla_webhook_reaches_the_api(engine, argilla_settings, live, app):
    """Argilla's own worker signs and posts to Arbiter's running API; the label appears."""
    ids = _seed(engine, 1)
    app.state.settings = argilla_settings
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    client = open_client(ArgillaConnection(argilla_settings.argilla_api_url, argilla_settings.argilla_api_key))
    try:
        while not server.started:
            time.sleep(0.05)
        register_webhook(argilla_settings, client, f"http://127.0.0.1:{port}/v1/labeling/argilla/webhook")
        spec = dataset_spec(argilla_settings)
        push_comparisons(engine, client, spec, limit=1)
        http = _annotator(live)
        _answer(http, _records(http, spec.name)[0]["id"], "b")
        deadline = time.monotonic() + 30
        while _count(engine, Label, Label.source == "human") == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        with Session(engine) as s:
            label = s.exec(select(Label).where(Label.source == "human")).first()
        assert label is not None, "no label arrived through the webhook within 30 s"
        assert (label.comparison_id, label.choice, label.producer) == (ids[0], "b", "annotator")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        for webhook in client._client.webhooks:
            webhook.delete()
