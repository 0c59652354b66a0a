"""Judge calls traced with the Langfuse SDK arrive at an OTLP/HTTP receiver; without settings, nothing."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from labeling import (
    LabelingConfig,
    LangfuseConfig,
    NoopTracer,
    OpenAIJudgeConfig,
    build_chain,
    label_comparisons,
    make_tracer,
)
from tests.labeling.conftest import FAST_RETRY, KeywordScorer, make_comparisons
from tests.labeling.fake_providers import REFUSAL


class OtlpReceiver:
    """Accepts OTLP/HTTP protobuf trace exports (gzip or plain) and keeps the decoded spans."""

    def __init__(self) -> None:
        self.spans: list = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                return

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.paths.append(self.path)
                if self.path.endswith("/v1/traces"):
                    if self.headers.get("content-encoding") == "gzip":
                        data = gzip.decompress(data)
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(data)
                    receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                    for resource_spans in request.resource_spans:
                        for scope_spans in resource_spans.scope_spans:
                            receiver.spans.extend(scope_spans.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def attributes(span) -> dict:
    """Span attributes as plain values; Langfuse JSON-encodes each metadata value."""
    out = {}
    for kv in span.attributes:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind) if kind else None
        out[kv.key] = json.loads(value) if kv.key.startswith("langfuse.observation.metadata.") else value
    return out


def test_judge_calls_arrive_as_spans_with_judge_model_and_cost(fake):
    public_key = f"pk-lf-{uuid.uuid4().hex[:8]}"  # the SDK keeps one exporter per public key
    global_provider = trace.get_tracer_provider()
    fake.openai.script.append(REFUSAL)  # one failed call, traced as an error
    with OtlpReceiver() as otlp:
        built = build_chain(
            LabelingConfig(
                judges=["openai", "local"],
                openai=OpenAIJudgeConfig(api_key="sk-test", base_url=fake.openai_url, timeout_s=2.0),
                reward_scorer=KeywordScorer(),
                retry=FAST_RETRY,
                langfuse=LangfuseConfig(public_key=public_key, secret_key="sk-lf-secret", host=otlp.url),
            )
        )

        async def go():
            report = await label_comparisons(make_comparisons(2), built.chain)
            await built.aclose()
            return report

        report = asyncio.run(go())
        built.tracer.shutdown()  # flushes the batch span processor

    assert trace.get_tracer_provider() is global_provider  # labeling did not hijack global tracing
    spans = otlp.spans
    openai_spans = [s for s in spans if s.name == "judge.openai"]
    local_spans = [s for s in spans if s.name == "judge.local-rm"]
    assert len(openai_spans) == 4  # 2 pairs x 2 orders; the refused pair fell back to local
    assert len(local_spans) == 2
    assert all(p == "/api/public/otel/v1/traces" for p in otlp.paths)
    auth = otlp.headers[0]["authorization"]
    assert base64.b64decode(auth.split()[1]).decode() == f"{public_key}:sk-lf-secret"

    by_outcome: dict[str, list[dict]] = {}
    for span in openai_spans:
        attrs = attributes(span)
        assert attrs["langfuse.observation.type"] == "generation"
        assert attrs["langfuse.observation.metadata.judge"] == "openai"
        assert attrs["langfuse.observation.metadata.provider"] == "openai"
        by_outcome.setdefault(attrs["langfuse.observation.metadata.outcome"], []).append(attrs)
    assert len(by_outcome["refusal"]) == 1 and len(by_outcome["ok"]) == 3
    assert by_outcome["refusal"][0]["langfuse.observation.level"] == "ERROR"

    traced_cost = sum(json.loads(a["langfuse.observation.cost_details"])["total"] for a in by_outcome["ok"])
    refused_cost = json.loads(by_outcome["refusal"][0]["langfuse.observation.cost_details"])["total"]
    assert refused_cost > 0  # the refused call was billed, and the trace says so
    # Every dollar the report puts on OpenAI (labels, and the pair it gave up on) was traced.
    assert traced_cost + refused_cost == pytest.approx(report.judges["openai"].cost_usd)
    assert all(a["langfuse.observation.model.name"] == "gpt-4o-mini-2024-07-18" for a in by_outcome["ok"])
    usage = json.loads(by_outcome["ok"][0]["langfuse.observation.usage_details"])
    assert usage["input"] > 0 and usage["output"] > 0


def test_without_settings_tracing_is_a_no_op():
    tracer = make_tracer(None)
    assert isinstance(tracer, NoopTracer)
    span = tracer.start(None, None)  # type: ignore[arg-type]
    assert span is tracer.start(None, None)  # one shared object: nothing allocated per call
    assert span.end(None) is None  # type: ignore[arg-type]


def test_langfuse_config_needs_keys_and_host():
    with pytest.raises(ValueError, match="public key"):
        LangfuseConfig(public_key="", secret_key="s", host="http://x")
