"""Start-up: the serving policies load and warm in the background while /readyz says what is loading.

Before, the model loaded inside the first request (a minute for SmolLM2's first conversion) while
/readyz already said ready. The tiny model stands in for SmolLM2; a gate holds its loading so the
test can look at the service while it is still loading.
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from app.api.main import create_app
from app.models import PolicyVersion
from app.services.serving.policy_runtime import PolicyRuntime
from app.services.serving.stack import Serving, build_safety_layer, prepare_store
from policies.backends.local import TransformersBackend


def _wait_ready(client: TestClient, deadline_s: float = 120) -> dict:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        r = client.get("/readyz")
        if r.status_code == 200:
            return r.json()
        time.sleep(0.05)
    raise AssertionError(f"not ready after {deadline_s} s: {r.json()}")


@pytest.mark.both_databases
def test_readyz_waits_for_the_policies_and_requests_find_them_loaded(settings, engine, tiny_causal_lm, make_key):
    model, tokenizer = tiny_causal_lm
    gate, loads = threading.Event(), []

    class CountingBackend(TransformersBackend):
        def completion_logprobs(self, prompts, completions):
            loads.append(("forward", len(prompts)))
            return super().completion_logprobs(prompts, completions)

    def factory(version):
        gate.wait(60)
        loads.append(("load", version.name))
        return CountingBackend(model, tokenizer, name="tiny")

    warm_settings = settings.model_copy(update={"preload_policies": True})
    app = create_app(warm_settings)
    # What the warm-up builds on first use, with the tiny model behind it (as the serving_app fixture does).
    app.state.serving = Serving(PolicyRuntime(warm_settings, backend_factory=factory), build_safety_layer(warm_settings))
    prepare_store(engine, app.state.serving)  # the base policies, as get_serving registers them
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200  # alive at once
        loading = client.get("/readyz")
        assert loading.status_code == 503
        error = loading.json()["error"]
        assert error["code"] == "not_ready" and error["details"]["database"] == engine.dialect.name
        assert error["details"]["policies"]["state"] in ("starting", "loading")
        if error["details"]["policies"]["state"] == "loading":
            assert "base-content" in error["message"]
        gate.set()
        ready = _wait_ready(client)
        with Session(engine) as s:
            serving_names = sorted(v.name for v in s.exec(select(PolicyVersion).where(PolicyVersion.state == "active")))
        assert ready["status"] == "ready" and sorted(ready["policies"]["ready"]) == serving_names
        assert {"base-content", "base-ticket-routing"} <= set(serving_names)
        assert sorted(name for kind, name in loads if kind == "load") == serving_names
        assert sum(kind == "forward" for kind, _ in loads) == len(serving_names)  # each warmed once
        before = len(loads)
        headers = {"Authorization": f"Bearer {make_key('app')}"}
        r = client.post("/v1/chat/completions", headers=headers,
                        json={"model": "arbiter", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2})
        assert r.status_code == 200, r.text
        assert not [x for x in loads[before:] if x[0] == "load"]  # the request found its policy loaded


@pytest.mark.both_databases
def test_a_failed_warm_up_keeps_the_service_not_ready_with_the_reason(settings, engine):
    def factory(version):
        raise FileNotFoundError("policy model directory not found: /nowhere")

    warm_settings = settings.model_copy(update={"preload_policies": True})
    app = create_app(warm_settings)
    app.state.serving = Serving(PolicyRuntime(warm_settings, backend_factory=factory), build_safety_layer(warm_settings))
    prepare_store(engine, app.state.serving)
    with TestClient(app) as client:
        end = time.monotonic() + 60
        while (r := client.get("/readyz")).json()["error"]["details"]["policies"]["state"] != "failed":
            assert time.monotonic() < end, r.json()
            time.sleep(0.05)
    assert r.status_code == 503 and "/nowhere" in r.json()["error"]["message"]


def test_without_preloading_readyz_only_checks_the_database(client):
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["policies"] == "loaded on first use"


def test_init_prepares_the_local_policy_model(run_cli, cli_env, smollm2_path):
    """`arbiter init` converts SmolLM2 into var/models once (here: already there, linked from the repository)."""
    models = cli_env.models_dir
    models.mkdir(parents=True, exist_ok=True)
    (models / smollm2_path.name).symlink_to(smollm2_path)
    out = json.loads(run_cli("init", "--json").output)
    assert out["model"] == {"path": str(models / smollm2_path.name)}
    assert "model" not in json.loads(run_cli("init", "--no-model", "--json").output)
