"""Property-based: requests generated from the app's own OpenAPI schema, valid ones and invalid ones, on every
route (chat included, served by the tiny model), never get a 5xx, and every response conforms to the schema
(body, content type, headers), on SQLite and on PostgreSQL. Every operation runs with an admin key (the role
matrix is tested elsewhere).

Operations are iterated by hand (not `schema.parametrize()`), because the app needs per-test fixtures (a fresh
store, the tiny policy model) that schemathesis' lazy loading cannot reach here. Failures are collected rather
than raised, so one run lists every failing operation instead of the first one shrunk.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)

CHECKS = [response_schema_conformance, content_type_conformance, response_headers_conformance]
EXAMPLES = 8  # per operation and generation mode: ~400 requests per store


def _call(case, headers: dict, name: str, failures: list[str]):
    """Send ``case``; a raise, a 5xx or a schema violation goes to ``failures`` under ``name``. Returns the response,
    or None when the server raised or answered 5xx."""
    try:
        response = case.call(headers=headers, timeout=300)
    except Exception as exc:  # noqa: BLE001 - the server raised: a server error, listed below
        failures.append(f"{name}: raised {type(exc).__name__}: {exc}"[:400])
        return None
    if response.status_code >= 500:
        failures.append(f"{name} -> {response.status_code}: {response.text[:300]}")
        return None
    try:
        case.validate_response(response, checks=CHECKS)
    except Exception as exc:  # noqa: BLE001 - schemathesis' failure group: a schema violation
        failures.append(f"{name} -> {response.status_code}: {str(exc)[:400]}")
    return response


@pytest.mark.both_databases
def test_no_server_errors_or_schema_violations_on_generated_requests(serving_app, make_key):
    headers = {"Authorization": f"Bearer {make_key('admin')}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", serving_app)
    tested, failures = [], []
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                                 suppress_health_check=list(HealthCheck))
            def check(case):
                _call(case, {**(case.headers or {}), **headers}, f"{name} ({mode.value})", failures)

            try:
                check()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters or body)
                assert mode == GenerationMode.NEGATIVE, name
        tested.append(name)
    served = _served_decisions(schema, headers, failures)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(dict.fromkeys(failures))
    assert "POST /v1/decisions/{decision_type}" in tested and "POST /v1/chat/completions" in tested
    assert served.count(200) >= len(served) // 2, served  # the schema-valid contexts were mostly served
    assert len(tested) == len({f"{m.upper()} {p}" for p, ops in schema.raw_schema["paths"].items() for m in ops
                               if m in ("get", "post", "put", "patch", "delete")})


# Generated bodies rarely match a decision type's own context schema (the OpenAPI schema says only "object"),
# so they stop at 422 before any model runs. These contexts do match, with arbitrary text and extra fields of
# every JSON type, so the served path (safety layer, tiny model, store, response) is what gets exercised.
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=20), lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                     max_leaves=6)
_CONTEXTS = {
    "ticket-routing": st.fixed_dictionaries(
        {"subject": st.text(min_size=1, max_size=300), "body": st.text(min_size=1, max_size=600),
         "customer": st.fixed_dictionaries({"tier": st.sampled_from(["vip", "standard"])},
                                           optional={"language": st.text(max_size=35), "region": st.text(max_size=20)})},
        optional={"mentions_legal_action": st.booleans(), "refund_amount": st.integers(0, 10**6), "extra": _JSON}),
    "content": st.fixed_dictionaries({"message": st.text(min_size=1, max_size=600)},
                                     optional={"tone": st.sampled_from(["friendly", "formal", "concise"]), "extra": _JSON}),
}


def _served_decisions(schema, headers: dict, failures: list[str]) -> list[int]:
    """Decisions on schema-valid contexts; failures go to ``failures``; returns the statuses."""
    operation = schema["/v1/decisions/{decision_type}"]["POST"]
    statuses: list[int] = []
    for decision_type, contexts in _CONTEXTS.items():

        @given(context=contexts, unit_id=st.none() | st.text(max_size=200))
        @hypothesis_settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(HealthCheck))
        def check(context, unit_id):
            case = operation.Case(path_parameters={"decision_type": decision_type}, body={"context": context, "unit_id": unit_id},
                                  media_type="application/json")
            response = _call(case, headers, f"POST /v1/decisions/{decision_type} (schema-valid context)", failures)
            if response is not None:
                statuses.append(response.status_code)

        check()
    return statuses

