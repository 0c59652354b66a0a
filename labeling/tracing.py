"""Tracing of judge calls with Langfuse, or nothing at all.

`TracedJudge` records one Langfuse *generation* per judge call (each attempt, including failed
ones) carrying the judge, provider, model, rubric version, token usage, cost and outcome. The
Langfuse SDK (v3+) is built on OpenTelemetry; `LangfuseTracer` gives it a private
`TracerProvider`, so labeling never replaces the process-wide OpenTelemetry provider of whatever
embeds it. Without Langfuse settings `NoopTracer` is used: it allocates nothing per call.

This module does not decide *whether* to trace (the caller passes a `LangfuseConfig` or not) and
never reads the environment: the SDK's own environment fallbacks are bypassed by passing every
setting explicitly.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from labeling.verdicts import Judge, JudgeFailure, JudgeRequest, JudgeResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LangfuseConfig:
    """Where to send traces. `host` is the Langfuse base URL (e.g. https://cloud.langfuse.com)."""

    public_key: str
    secret_key: str
    host: str
    environment: str | None = None
    capture_text: bool = False  # also send the prompt and responses (may hold personal data)
    flush_interval_s: float | None = None

    def __post_init__(self) -> None:
        if not (self.public_key and self.secret_key and self.host):
            raise ValueError("Langfuse needs a public key, a secret key and a host")


class SpanHandle(Protocol):
    def end(self, result: JudgeResult) -> None: ...


class JudgeTracer(Protocol):
    def start(self, judge: Judge, request: JudgeRequest) -> SpanHandle: ...

    def flush(self) -> None: ...

    def shutdown(self) -> None: ...


class _NoopSpan:
    def end(self, result: JudgeResult) -> None:
        return None


_NOOP_SPAN = _NoopSpan()


class NoopTracer:
    """The tracer when tracing is off: every method returns at once."""

    def start(self, judge: Judge, request: JudgeRequest) -> SpanHandle:
        return _NOOP_SPAN

    def flush(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


class _LangfuseSpan:
    def __init__(self, observation: Any, capture_text: bool) -> None:
        self._observation = observation
        self._capture_text = capture_text

    def end(self, result: JudgeResult) -> None:
        try:
            usage = {"input": result.input_tokens, "output": result.output_tokens}
            cost = {"total": result.cost_usd}
            if isinstance(result, JudgeFailure):
                self._observation.update(
                    level="ERROR",
                    status_message=f"{result.kind}: {result.message}",
                    usage_details=usage,
                    cost_details=cost,
                    metadata={"outcome": result.kind},
                )
            else:
                self._observation.update(
                    model=result.model,  # the model the provider says answered
                    output={
                        "preferred": result.preferred,
                        "confidence": result.confidence,
                        **({"rationale": result.rationale} if self._capture_text else {}),
                    },
                    usage_details=usage,
                    cost_details=cost,
                    metadata={"outcome": "ok", "latency_s": f"{result.latency_s:.4f}"},
                )
            self._observation.end()
        except Exception:  # tracing must never cost a label
            log.exception("could not record a Langfuse span")


class LangfuseTracer:
    """Sends one generation per judge call to Langfuse over OTLP/HTTP.

    Note: the Langfuse SDK keeps one set of resources per public key for the whole process, so
    two tracers with the same public key share the first one's exporter.
    """

    def __init__(self, config: LangfuseConfig) -> None:
        from langfuse import Langfuse
        from opentelemetry.sdk.trace import TracerProvider

        self.config = config
        self._provider = TracerProvider()
        self._client = Langfuse(
            public_key=config.public_key,
            secret_key=config.secret_key,
            base_url=config.host,
            environment=config.environment,
            tracing_enabled=True,
            tracer_provider=self._provider,
            flush_interval=config.flush_interval_s,
        )

    def start(self, judge: Judge, request: JudgeRequest) -> SpanHandle:
        try:
            observation = self._client.start_observation(
                name=f"judge.{judge.name}",
                as_type="generation",
                model=judge.model,
                input=(
                    {"prompt": request.prompt, "first": request.first, "second": request.second}
                    if self.config.capture_text
                    else None
                ),
                metadata={
                    "judge": judge.name,
                    "provider": judge.provider,
                    "configured_model": judge.model,
                    "rubric_version": judge.rubric_version or "",
                    "comparison_id": request.comparison_id,
                    "order": request.order,
                },
            )
        except Exception:
            log.exception("could not start a Langfuse span")
            return _NOOP_SPAN
        return _LangfuseSpan(observation, self.config.capture_text)

    def flush(self) -> None:
        self._client.flush()

    def shutdown(self) -> None:
        self._client.shutdown()
        self._provider.shutdown()


def make_tracer(config: LangfuseConfig | None) -> JudgeTracer:
    """A Langfuse tracer when configured, the no-op tracer otherwise."""
    return LangfuseTracer(config) if config is not None else NoopTracer()


class TracedJudge:
    """Wraps a judge so that each of its calls becomes one span."""

    def __init__(self, inner: Judge, tracer: JudgeTracer) -> None:
        self.inner = inner
        self.tracer = tracer
        self.name, self.provider, self.model = inner.name, inner.provider, inner.model
        self.rubric_version = inner.rubric_version

    def estimate_cost(self, request: JudgeRequest) -> float:
        return self.inner.estimate_cost(request)  # type: ignore[attr-defined]

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        span = self.tracer.start(self.inner, request)
        try:
            result = await self.inner.judge(request)
        except BaseException as exc:
            # Cancelled by the per-call timeout, or a bug below: the span still ends, then the
            # exception goes on to whoever handles it.
            kind = "timeout" if isinstance(exc, asyncio.CancelledError) else "error"
            span.end(JudgeFailure(kind, repr(exc), self.name, self.provider, self.model))
            raise
        span.end(result)
        return result
