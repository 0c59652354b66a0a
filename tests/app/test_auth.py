"""Every /v1 route declares its roles: 401 without a valid key, 403 with the wrong role."""

from __future__ import annotations

import pytest

from app.models import ROLES

# (method, path, body, roles allowed) for the foundation's routes; other areas test their own.
ROUTES = [
    ("GET", "/v1/whoami", None, set(ROLES)),
    ("GET", "/v1/keys", None, {"admin"}),
    ("POST", "/v1/keys", {"role": "app"}, {"admin"}),
    ("GET", "/v1/audit", None, {"admin"}),
    ("GET", "/v1/audit/verify", None, {"admin"}),
    ("POST", "/v1/pairs", {"source": "t", "pairs": [{"prompt": "p", "chosen": "c", "rejected": "r"}]}, {"admin", "annotator"}),
    ("GET", "/v1/pairs", None, {"admin", "annotator", "reviewer"}),
]


@pytest.mark.parametrize("method,path,body,allowed", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
@pytest.mark.parametrize("role", ROLES)
def test_role_matrix(client, auth, method, path, body, allowed, role):
    response = client.request(method, path, json=body, headers=auth(role))
    if role in allowed:
        assert response.status_code in (200, 201), response.text
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize("method,path,body,allowed", ROUTES, ids=[f"{m} {p}" for m, p, _, _ in ROUTES])
def test_missing_and_invalid_key(client, method, path, body, allowed):
    assert client.request(method, path, json=body).status_code == 401
    bad = client.request(method, path, json=body, headers={"Authorization": "Bearer ak_admin_nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"


@pytest.mark.both_databases
def test_revoked_key_is_refused_and_audited(client, auth):
    admin = auth("admin")
    created = client.post("/v1/keys", json={"role": "reviewer", "name": "r1"}, headers=admin)
    assert created.status_code == 201
    secret, key_id = created.json()["secret"], created.json()["id"]
    assert client.get("/v1/whoami", headers={"X-API-Key": secret}).json()["role"] == "reviewer"
    listed = client.get("/v1/keys", headers=admin).json()
    assert all("secret" not in k and "key_hash" not in k for k in listed)
    assert client.delete(f"/v1/keys/{key_id}", headers=admin).status_code == 200
    assert client.get("/v1/whoami", headers={"X-API-Key": secret}).status_code == 401
    actions = [e["action"] for e in client.get("/v1/audit", headers=admin).json()]
    assert actions.count("key.created") == 2 and actions.count("key.revoked") == 1


def test_cli_keys(run_cli):
    import json

    created = json.loads(run_cli("keys", "create", "--role", "annotator", "--json").stdout)
    assert created["secret"].startswith("ak_annotator_")
    listed = json.loads(run_cli("keys", "list", "--json").stdout)
    assert [k["id"] for k in listed] == [created["id"]] and "secret" not in listed[0]
    assert run_cli("keys", "revoke", created["id"], "--json").exit_code == 0
    assert json.loads(run_cli("keys", "list", "--json").stdout)[0]["revoked_at"]
    bad = run_cli("keys", "create", "--role", "king")
    assert bad.exit_code == 2 and "unknown role" in bad.stderr
