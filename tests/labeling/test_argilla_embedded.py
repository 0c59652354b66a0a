"""The official `argilla` SDK against the real embedded argilla-server (in-process search engine).

One server per test session (`tests.labeling.live_argilla`); each test uses its own dataset.
Annotators answer through the same HTTP endpoints the Argilla UI calls, with the annotator's key.
"""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from typing import ClassVar

import argilla as rg
import httpx
import pytest

from labeling.argilla import (
    ArgillaAuthError,
    ArgillaClient,
    ArgillaClientError,
    ArgillaConnection,
    DatasetSpec,
    InvalidWebhook,
    JudgeSuggestion,
    PushItem,
    embedded_status,
    parse_response_event,
    start_embedded,
    verify_delivery,
)

pytestmark = pytest.mark.argilla


@pytest.fixture
def spec(live) -> DatasetSpec:
    return DatasetSpec(name=f"prefs-{uuid.uuid4().hex[:8]}", workspace=live.instance.workspace)


@pytest.fixture
def owner(live) -> ArgillaClient:
    return ArgillaClient(live.instance.connection())


@pytest.fixture
def annotator_http(live):
    with httpx.Client(
        base_url=f"{live.instance.url}/api/v1",
        headers={"X-Argilla-Api-Key": live.instance.annotator.api_key},
        timeout=30,
    ) as client:
        yield client


def _items(n: int) -> list[PushItem]:
    topics = ["bread", "tea", "bicycles", "cats", "rain", "chess"]
    return [
        PushItem(
            comparison_id=f"cmp-{i}",
            prompt=f"Tell me about {topics[i % len(topics)]}.",
            response_a=f"**A** answer number {i}",
            response_b=f"*B* answer number {i}",
            source="hh-harmless" if i % 2 else "synthetic",
            priority=float(i),
            suggestion=JudgeSuggestion("a" if i % 2 else "b", agent="judge-x", score=0.5 + i / 100),
        )
        for i in range(n)
    ]


def _dataset_id(http: httpx.Client, name: str) -> str:
    found = [d["id"] for d in http.get("/me/datasets").raise_for_status().json()["items"] if d["name"] == name]
    assert found, f"annotator cannot see dataset {name}"
    return found[0]


def _search(http: httpx.Client, dataset_id: str, statuses=None, query=None, filters=(), sort=None):
    """The annotator's record search, as the UI sends it."""
    conditions = list(filters)
    if statuses:
        conditions.append({"type": "terms", "scope": {"entity": "response", "property": "status"}, "values": statuses})
    body: dict = {"filters": {"and": conditions}} if conditions else {}
    if query:
        body["query"] = {"text": {"q": query}}
    if sort:
        body["sort"] = sort
    result = http.post(f"/me/datasets/{dataset_id}/records/search", json=body).raise_for_status().json()
    return result["total"], [item["record"]["external_id"] for item in result["items"]]


def _record_ids(http: httpx.Client, dataset_id: str) -> dict[str, str]:
    items = http.post(f"/me/datasets/{dataset_id}/records/search", params={"limit": 1000}, json={}).json()["items"]
    return {item["record"]["external_id"]: item["record"]["id"] for item in items}


def _answer(http: httpx.Client, record_id: str, choice: str | None, status="submitted", **extra) -> dict:
    values = {"preference": {"value": choice}} if choice else {}
    values.update({k: {"value": v} for k, v in extra.items()})
    response = http.post(f"/records/{record_id}/responses", json={"values": values, "status": status})
    assert response.status_code == 201, response.text
    return response.json()


def test_up_is_idempotent(live):
    again = start_embedded(live.config)
    assert again.already_running and again.server_pid == live.instance.server_pid
    assert again.owner == live.instance.owner
    assert embedded_status(live.config) is not None
    info = httpx.get(f"{live.instance.url}/api/v1/status", headers={"X-Argilla-Api-Key": live.instance.owner.api_key})
    assert info.json()["search_engine"]["engine"] == "arbiter-inprocess"


def test_push_answer_pull_repush_and_change(owner, spec, annotator_http):
    confirmed: list[str] = []
    result = owner.push(spec, _items(4), batch_size=3, on_confirmed=confirmed.extend)
    assert result.pushed == ["cmp-0", "cmp-1", "cmp-2", "cmp-3"] and confirmed == result.pushed

    # The dataset as the SDK sees it: settings, distribution, suggestions with agent and score.
    dataset = owner._client.datasets(name=spec.name, workspace=spec.workspace)
    assert dataset.settings.distribution.min_submitted == 1
    assert {q.name for q in dataset.questions} == {"preference", "rationale", "safety_flags"}
    records = {r.id: r for r in dataset.records(with_suggestions=True)}
    assert set(records) == set(result.pushed)
    suggestion = records["cmp-1"].suggestions["preference"]
    assert (suggestion.value, suggestion.agent, suggestion.score) == ("a", "judge-x", pytest.approx(0.51))
    assert records["cmp-1"].metadata["source"] == "hh-harmless"

    dataset_id = _dataset_id(annotator_http, spec.name)
    ids = _record_ids(annotator_http, dataset_id)
    first = _answer(annotator_http, ids["cmp-0"], "b", rationale="B is kinder", safety_flags=["a_unsafe"])
    _answer(annotator_http, ids["cmp-1"], "tie")
    _answer(annotator_http, ids["cmp-2"], None, status="discarded")
    _answer(annotator_http, ids["cmp-3"], "a", status="draft")

    pulled = owner.pull(spec)
    assert pulled.errors == [] and pulled.records_seen == 4
    by_id = {r.comparison_id: r for r in pulled.responses}
    assert set(by_id) == {"cmp-0", "cmp-1", "cmp-2"}  # the draft is not a label yet
    assert by_id["cmp-0"].annotator == "annotator"
    assert (by_id["cmp-0"].choice, by_id["cmp-0"].rationale, by_id["cmp-0"].safety_flags) == (
        "b", "B is kinder", ("a_unsafe",))
    assert by_id["cmp-1"].choice == "tie"
    assert by_id["cmp-2"].status == "discarded" and by_id["cmp-2"].choice is None

    # Pushing again adds nothing, and reports everything as already there.
    again = owner.push(spec, _items(4))
    assert again.pushed == [] and again.already_present == result.pushed
    assert len(list(dataset.records())) == 4

    # The annotator changes their mind: one response per annotator, updated in place.
    time.sleep(0.01)
    changed = annotator_http.put(
        f"/responses/{first['id']}", json={"values": {"preference": {"value": "a"}}, "status": "submitted"}
    )
    assert changed.status_code == 200, changed.text
    after = [r for r in owner.pull(spec).responses if r.comparison_id == "cmp-0"]
    assert len(after) == 1 and after[0].choice == "a" and after[0].responded_at > by_id["cmp-0"].responded_at


def test_push_resumes_after_a_crash_between_batches(owner, spec):
    confirmed: list[str] = []

    def crash_after_first_batch(ids: list[str]) -> None:
        confirmed.extend(ids)
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError, match="store went away"):
        owner.push(spec, _items(5), batch_size=2, on_confirmed=crash_after_first_batch)
    assert confirmed == ["cmp-0", "cmp-1"]

    resumed = owner.push(spec, _items(5), batch_size=2)
    assert resumed.already_present == ["cmp-0", "cmp-1"]
    assert resumed.pushed == ["cmp-2", "cmp-3", "cmp-4"]


def test_search_engine_serves_what_the_ui_asks(owner, spec, annotator_http, live):
    owner.push(spec, _items(6))
    dataset_id = _dataset_id(annotator_http, spec.name)
    ids = _record_ids(annotator_http, dataset_id)
    _answer(annotator_http, ids["cmp-1"], "b")
    _answer(annotator_http, ids["cmp-2"], None, status="discarded")
    _answer(annotator_http, ids["cmp-3"], "a", status="draft")

    # Queues by response status for this user; pending keeps the push order.
    assert _search(annotator_http, dataset_id, ["pending"]) == (3, ["cmp-0", "cmp-4", "cmp-5"])
    assert _search(annotator_http, dataset_id, ["submitted"]) == (1, ["cmp-1"])
    assert _search(annotator_http, dataset_id, ["discarded"]) == (1, ["cmp-2"])
    assert _search(annotator_http, dataset_id, ["draft"]) == (1, ["cmp-3"])
    assert _search(annotator_http, dataset_id, ["pending", "draft"])[0] == 4

    # Text query over the fields, metadata filters and sorting, suggestion and response filters.
    assert _search(annotator_http, dataset_id, query="bicycles") == (1, ["cmp-2"])
    assert _search(annotator_http, dataset_id, ["pending"], query="answer -cats")[1] == ["cmp-0", "cmp-4", "cmp-5"]
    meta = {"entity": "metadata", "metadata_property": "priority"}
    assert _search(annotator_http, dataset_id, filters=[{"type": "range", "scope": meta, "ge": 2, "le": 4}])[1] == [
        "cmp-2", "cmp-3", "cmp-4"]
    assert _search(annotator_http, dataset_id, ["pending"], sort=[{"scope": meta, "order": "desc"}])[1] == [
        "cmp-5", "cmp-4", "cmp-0"]
    source = {"entity": "metadata", "metadata_property": "source"}
    assert _search(annotator_http, dataset_id, filters=[{"type": "terms", "scope": source, "values": ["synthetic"]}])[0] == 3
    suggested = {"entity": "suggestion", "question": "preference", "property": "value"}
    assert _search(annotator_http, dataset_id, filters=[{"type": "terms", "scope": suggested, "values": ["a"]}])[1] == [
        "cmp-1", "cmp-3", "cmp-5"]
    answered = {"entity": "response", "question": "preference"}
    assert _search(annotator_http, dataset_id, filters=[{"type": "terms", "scope": answered, "values": ["b"]}])[1] == [
        "cmp-1"]
    score = {"entity": "suggestion", "question": "preference", "property": "score"}
    assert _search(annotator_http, dataset_id, sort=[{"scope": score, "order": "desc"}])[1][0] == "cmp-5"

    # Progress counts (the UI's progress bar) and metadata metrics (the UI's filter widgets).
    metrics = annotator_http.get(f"/me/datasets/{dataset_id}/metrics").json()["responses"]
    assert metrics == {"total": 6, "submitted": 1, "discarded": 1, "draft": 1, "pending": 3}
    owner_http = httpx.Client(base_url=f"{live.instance.url}/api/v1",
                              headers={"X-Argilla-Api-Key": live.instance.owner.api_key})
    progress = owner_http.get(f"/datasets/{dataset_id}/progress").json()
    assert (progress["total"], progress["completed"], progress["pending"]) == (6, 1, 5)
    properties = owner_http.get(f"/me/datasets/{dataset_id}/metadata-properties").json()["items"]
    by_name = {p["name"]: owner_http.get(f"/metadata-properties/{p['id']}/metrics").json() for p in properties}
    assert (by_name["priority"]["min"], by_name["priority"]["max"]) == (0.0, 5.0)
    assert {v["term"]: v["count"] for v in by_name["source"]["values"]} == {"synthetic": 3, "hh-harmless": 3}

    # The SDK's own query path goes through the same engine.
    dataset = owner._client.datasets(name=spec.name, workspace=spec.workspace)
    hits = list(dataset.records(query=rg.Query(query="tea", filter=rg.Filter(("metadata.priority", ">=", 1)))))
    assert [r.id for r in hits] == ["cmp-1"]


def test_distribution_change_is_applied_by_the_worker(owner, spec, annotator_http, live):
    """Changing min_submitted re-computes record status in Argilla's rq worker (a separate
    process), and the engine's counts follow without any re-index."""
    owner.push(spec, _items(1))
    dataset_id = _dataset_id(annotator_http, spec.name)
    _answer(annotator_http, _record_ids(annotator_http, dataset_id)["cmp-0"], "a")
    owner_http = httpx.Client(base_url=f"{live.instance.url}/api/v1",
                              headers={"X-Argilla-Api-Key": live.instance.owner.api_key})
    assert owner_http.get(f"/datasets/{dataset_id}/progress").json()["completed"] == 1

    dataset = owner._client.datasets(name=spec.name, workspace=spec.workspace)
    dataset.distribution = rg.TaskDistribution(min_submitted=2)
    dataset.update()
    deadline = time.monotonic() + 30
    while owner_http.get(f"/datasets/{dataset_id}/progress").json()["completed"] != 0:
        assert time.monotonic() < deadline, "the worker did not re-compute record status within 30 s"
        time.sleep(0.3)
    assert _search(annotator_http, dataset_id, ["submitted"]) == (1, ["cmp-0"])


class _Receiver(http.server.BaseHTTPRequestHandler):
    deliveries: ClassVar[list[tuple[bytes, dict]]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        _Receiver.deliveries.append((body, dict(self.headers)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):  # keep test output quiet
        pass


def test_webhook_delivered_by_argillas_worker_is_verified(owner, spec, annotator_http):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        secret = owner.ensure_webhook(url)
        assert owner.ensure_webhook(url) == secret  # registering twice reuses the webhook
        owner.push(spec, _items(1))
        ids = _record_ids(annotator_http, _dataset_id(annotator_http, spec.name))
        _Receiver.deliveries.clear()
        _answer(annotator_http, ids["cmp-0"], "b")

        deadline = time.monotonic() + 30
        while not _Receiver.deliveries and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _Receiver.deliveries, "Argilla's worker delivered no webhook within 30 s"
        body, headers = _Receiver.deliveries[0]
        event = verify_delivery(secret, body, headers)
        dataset, response = parse_response_event(event)
        assert event.type == "response.created" and dataset == spec.name
        assert (response.comparison_id, response.annotator, response.choice) == ("cmp-0", "annotator", "b")
        tampered = body.replace(b'"b"', b'"a"')
        with pytest.raises(InvalidWebhook, match="signature"):
            verify_delivery(secret, tampered, headers)
    finally:
        server.shutdown()
        for webhook in owner._client.webhooks:
            webhook.delete()


def test_wrong_key_and_wrong_dataset_shape_are_clear_errors(live, spec, owner):
    with pytest.raises(ArgillaAuthError):
        ArgillaClient(ArgillaConnection(live.instance.url, "not-a-key")).push(spec, _items(1))
    other = rg.Dataset(
        name=f"other-{uuid.uuid4().hex[:6]}",
        workspace=spec.workspace,
        settings=rg.Settings(fields=[rg.TextField("text")], questions=[rg.LabelQuestion("label", ["x", "y"])]),
        client=owner._client,
    ).create()
    with pytest.raises(ArgillaClientError, match="not a preference dataset"):
        owner.push(DatasetSpec(other.name, spec.workspace), _items(1))
    with pytest.raises(ArgillaClientError, match="does not exist"):
        owner.pull(DatasetSpec("no-such-dataset", spec.workspace))
