"""The API skeleton: health, readiness, metrics, docs, JSON errors, body limit."""

from __future__ import annotations

import pytest


def test_health_ready_metrics_docs(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    client.get("/v1/whoami")  # a 401, counted too
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'arbiter_http_requests_total{method="GET",route="/v1/whoami",status="401"}' in metrics.text
    schema = client.get("/openapi.json").json()
    assert "/v1/pairs" in schema["paths"] and client.get("/docs").status_code == 200


def test_readyz_fails_when_database_is_gone(settings, tmp_path):
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    broken = settings.model_copy(update={"database_url": "postgresql+psycopg://nobody@127.0.0.1:1/none"})
    with TestClient(create_app(broken)) as c:
        r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"


def test_body_too_large(client, auth):
    big = {"source": "x", "pairs": [{"prompt": "p" * 600_000, "chosen": "c" * 600_000, "rejected": "r"}]}
    r = client.post("/v1/pairs", json=big, headers=auth("admin"))
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"


def test_streamed_body_too_large(client, auth):
    """A chunked body without Content-Length is cut off at the limit too."""
    def chunks():
        for _ in range(40):
            yield b"x" * 50_000

    r = client.post("/v1/pairs", content=chunks(), headers={**auth("admin"), "Content-Type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("body", [b"{not json", b'{"source": "x"}', b'{"source": "bad name!", "pairs": [{}]}', b"[]"])
def test_malformed_input_is_422_json(client, auth, body):
    r = client.post("/v1/pairs", content=body, headers={**auth("admin"), "Content-Type": "application/json"})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input" and err["message"]


def test_unknown_route_is_json_404(client):
    r = client.get("/v1/nope")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
