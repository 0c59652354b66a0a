"""Property-based: requests generated from the app's own OpenAPI schema (valid and invalid ones)
never get a 5xx. Every operation runs with an admin key (the role matrix is tested elsewhere).

Operations are iterated by hand (not `schema.parametrize()`), because the app needs per-test
fixtures (a fresh store, the tiny policy model) that schemathesis' lazy loading cannot reach here.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings


def test_no_server_errors_on_generated_requests(serving_app, make_key):
    headers = {"Authorization": f"Bearer {make_key('admin')}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", serving_app)
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(max_examples=5, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call(headers={**(case.headers or {}), **headers}, timeout=300)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}")

        check()
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /v1/decisions/{decision_type}" in tested and "POST /v1/chat/completions" in tested
