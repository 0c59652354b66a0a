"""Anthropic Message Batches for judge requests: create, retrieve (poll), read the results.

Each request's params are built by `AnthropicJudge.request_params` and each succeeded result is
parsed by `AnthropicJudge.parse_message`, so a batched verdict is the synchronous one at half the
price. Submission and collection are separate functions because they happen in separate runs.

This module does not store batch ids; the caller keeps the returned `BatchSubmission`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from labeling.batch.common import (
    BatchCollection,
    BatchError,
    BatchPlan,
    BatchStatus,
    BatchSubmission,
    assemble_for_judge,
    parse_custom_id,
    plan_for_judge,
    submission,
)
from labeling.cache import JudgeCache
from labeling.judges.anthropic_judge import AnthropicJudge
from labeling.verdicts import Comparison, JudgeFailure, JudgeResult

_ERROR_KINDS = {
    "rate_limit_error": "rate_limit",
    "overloaded_error": "server_error",
    "api_error": "server_error",
    "authentication_error": "auth",
    "permission_error": "auth",
    "invalid_request_error": "bad_request",
}


plan_anthropic_batch = plan_for_judge  # planning is the same for both providers; the name stays for callers


def build_anthropic_batch_requests(judge: AnthropicJudge, plan: BatchPlan) -> list[dict[str, Any]]:
    return [{"custom_id": item.custom_id, "params": judge.request_params(item.request)} for item in plan.requests]


async def submit_anthropic_batch(judge: AnthropicJudge, plan: BatchPlan) -> BatchSubmission:
    if not plan.requests:
        raise BatchError("nothing to submit: every comparison is cached or over budget")
    requests = build_anthropic_batch_requests(judge, plan)
    batch = await judge.client.messages.batches.create(requests=requests)
    return submission(judge, plan, batch.id, len(requests))


async def anthropic_batch_status(judge: AnthropicJudge, batch_id: str) -> BatchStatus:
    batch = await judge.client.messages.batches.retrieve(batch_id)
    counts = batch.request_counts
    total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
    return BatchStatus(
        provider="anthropic",
        batch_id=batch.id,
        state="ended" if batch.processing_status == "ended" else "in_progress",
        raw_status=batch.processing_status,
        succeeded=counts.succeeded,
        failed=counts.errored + counts.canceled + counts.expired,
        total=total,
    )


def parse_anthropic_result(judge: AnthropicJudge, entry: Any) -> JudgeResult:
    """A verdict or failure from one `MessageBatchIndividualResponse`."""
    result = entry.result
    if result.type == "succeeded":
        return judge.parse_message(result.message, batch=True)
    if result.type == "errored":
        error = getattr(getattr(result, "error", None), "error", None)
        error_type = getattr(error, "type", "api_error")
        message = getattr(error, "message", "") or error_type
        kind = _ERROR_KINDS.get(error_type, "error")
        return JudgeFailure(kind, f"batch request errored: {message}"[:500], judge.name, judge.provider, judge.model)  # type: ignore[arg-type]
    return JudgeFailure("error", f"batch request {result.type}", judge.name, judge.provider, judge.model)


async def collect_anthropic_batch(
    judge: AnthropicJudge,
    batch_id: str,
    comparisons: Sequence[Comparison],
    *,
    cache: JudgeCache | None = None,
) -> BatchCollection:
    """Labels for the comparisons of an ended batch (raises BatchError while it is still running)."""
    batch = await judge.client.messages.batches.retrieve(batch_id)
    if batch.processing_status != "ended":
        raise BatchError(f"batch {batch_id} is still {batch.processing_status}")
    results: dict[str, JudgeResult] = {}
    async for entry in await judge.client.messages.batches.results(batch_id):
        try:
            parse_custom_id(entry.custom_id)
        except ValueError:
            continue
        results[entry.custom_id] = parse_anthropic_result(judge, entry)
    return assemble_for_judge(judge, comparisons, results, cache=cache)
