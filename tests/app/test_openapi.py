"""/openapi.json declares how to authenticate and the error answers each route gives (issue 21.7d).

Before, it declared no security scheme, and its only error answer was FastAPI's default 422
(`HTTPValidationError`), a shape Arbiter never sends: a generated client or schemathesis could not
know that a route answers 401, 403, 404, 409 or 503, nor what those bodies look like."""

from __future__ import annotations

import pytest

from app.errors import ErrorResponse

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
UNAUTHENTICATED = {"/healthz", "/readyz", "/metrics", "/v1/labeling/argilla/webhook"}


@pytest.fixture
def schema(client):
    return client.get("/openapi.json").json()


def _operations(schema):
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def test_security_schemes_are_declared(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "description": schemes["bearer"]["description"]}
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == ("apiKey", "header", "X-API-Key")
    for path, method, operation in _operations(schema):
        if path in UNAUTHENTICATED:
            assert "security" not in operation, (method, path)
        else:
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}], (method, path)


def test_every_error_answer_uses_the_error_model(schema):
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, method, operation in _operations(schema):
        responses = operation["responses"]
        expected = set()
        if path not in UNAUTHENTICATED:
            expected |= {"401", "403"}
        if operation.get("parameters") or "requestBody" in operation:
            expected.add("422")
        if "{" in path:
            expected.add("404")
        assert expected <= set(responses), (method, path, sorted(responses))
        for code, answer in responses.items():
            if code[0] in "45":
                assert answer["content"]["application/json"]["schema"] == ERROR_REF, (method, path, code)


@pytest.mark.parametrize(("method", "path", "codes"), [
    ("post", "/v1/decisions/{decision_type}", {"404", "409", "413", "422", "503"}),
    ("post", "/v1/decisions/{decision_id}/outcome", {"404", "409"}),
    ("post", "/v1/review/items/{item_id}/verdict", {"404", "409"}),
    ("post", "/v1/chat/completions", {"404", "503"}),
    ("delete", "/v1/keys/{key_id}", {"404"}),
    ("post", "/v1/labeling/argilla/webhook", {"401", "404", "422", "503"}),
    ("get", "/readyz", {"503"}),
])
def test_route_specific_codes(schema, method, path, codes):
    assert codes <= set(schema["paths"][path][method]["responses"])


def test_documented_errors_are_what_the_routes_send(client, auth):
    """The bodies behind the documented codes validate against the documented model."""
    admin = auth("admin")
    answers = [
        client.get("/v1/keys"),  # 401
        client.get("/v1/keys", headers=auth("app")),  # 403
        client.get("/v1/decisions/nope", headers=admin),  # 404
        client.post("/v1/pairs", json={"source": "x"}, headers=admin),  # 422 from validation
        client.get("/v1/audit", params={"limit": 0}, headers=admin),  # 422 from a query bound
    ]
    assert [r.status_code for r in answers] == [401, 403, 404, 422, 422]
    for response in answers:
        ErrorResponse.model_validate(response.json())
