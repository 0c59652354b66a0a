"""OpenAI Batch API for judge requests: upload a JSONL file, create a batch, poll, download.

Each line of the input file is a Chat Completions request built by `OpenAIJudge.request_body`, so
a batched verdict is parsed by the same code as a synchronous one, at half the price. The three
steps are separate functions because they happen in separate runs: `submit_openai_batch` today,
`openai_batch_status` / `collect_openai_batch` when the batch has ended (within 24 hours).

This module does not store batch ids; the caller keeps the returned `BatchSubmission`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from openai.types.chat import ChatCompletion

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
from labeling.judges.errors import kind_for_status
from labeling.judges.openai_judge import OpenAIJudge
from labeling.verdicts import Comparison, JudgeFailure, JudgeResult

ENDPOINT = "/v1/chat/completions"
_STATES = {
    "validating": "in_progress",
    "in_progress": "in_progress",
    "finalizing": "in_progress",
    "cancelling": "in_progress",
    "completed": "ended",
    "failed": "failed",
    "expired": "expired",
    "cancelled": "cancelled",
}


plan_openai_batch = plan_for_judge  # planning is the same for both providers; the name stays for callers


def build_openai_batch_lines(judge: OpenAIJudge, plan: BatchPlan) -> list[dict[str, Any]]:
    """The JSONL records of the batch input file."""
    return [
        {"custom_id": item.custom_id, "method": "POST", "url": ENDPOINT, "body": judge.request_body(item.request)}
        for item in plan.requests
    ]


async def submit_openai_batch(judge: OpenAIJudge, plan: BatchPlan) -> BatchSubmission:
    """Upload the requests and create the batch; nothing is submitted for an empty plan."""
    if not plan.requests:
        raise BatchError("nothing to submit: every comparison is cached or over budget")
    lines = build_openai_batch_lines(judge, plan)
    data = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
    uploaded = await judge.client.files.create(file=("arbiter-judge-batch.jsonl", data), purpose="batch")
    batch = await judge.client.batches.create(
        input_file_id=uploaded.id,
        endpoint=ENDPOINT,
        completion_window="24h",
        metadata={"source": "arbiter-judge", "rubric_version": judge.rubric_version or ""},
    )
    return submission(judge, plan, batch.id, len(lines), input_file_id=uploaded.id)


async def openai_batch_status(judge: OpenAIJudge, batch_id: str) -> BatchStatus:
    batch = await judge.client.batches.retrieve(batch_id)
    counts = batch.request_counts
    return BatchStatus(
        provider="openai",
        batch_id=batch.id,
        state=_STATES.get(batch.status, "in_progress"),  # type: ignore[arg-type]
        raw_status=batch.status,
        succeeded=counts.completed if counts else 0,
        failed=counts.failed if counts else 0,
        total=counts.total if counts else 0,
    )


def parse_openai_output_line(judge: OpenAIJudge, record: dict[str, Any]) -> tuple[str, JudgeResult]:
    """(custom_id, verdict or failure) from one line of a batch output or error file."""
    cid = str(record.get("custom_id", ""))
    response = record.get("response") or {}
    status = int(response.get("status_code") or 0)
    body = response.get("body")

    def fail(kind: str, message: str) -> tuple[str, JudgeResult]:
        return cid, JudgeFailure(kind, message[:500], judge.name, judge.provider, judge.model)  # type: ignore[arg-type]

    if status == 200 and isinstance(body, dict):
        try:
            completion = ChatCompletion.model_validate(body)
        except ValueError as exc:
            return fail("malformed", f"batch output is not a chat completion: {exc}")
        return cid, judge.parse_completion(completion, batch=True)
    error = record.get("error")
    if not error and isinstance(body, dict):
        error = body.get("error")
    message = json.dumps(error) if error else f"status {status}"
    return fail(kind_for_status(status) if status else "error", f"batch request failed: {message}")


async def _file_lines(judge: OpenAIJudge, file_id: str | None) -> list[dict[str, Any]]:
    if not file_id:
        return []
    content = await judge.client.files.content(file_id)
    records = []
    for number, line in enumerate(content.text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise BatchError(f"line {number} of batch file {file_id} is not JSON: {exc}") from exc
    return records


async def collect_openai_batch(
    judge: OpenAIJudge,
    batch_id: str,
    comparisons: Sequence[Comparison],
    *,
    cache: JudgeCache | None = None,
) -> BatchCollection:
    """Labels for the comparisons of an ended batch (raises BatchError while it is still running)."""
    batch = await judge.client.batches.retrieve(batch_id)
    if _STATES.get(batch.status, "in_progress") == "in_progress":
        raise BatchError(f"batch {batch_id} is still {batch.status}")
    results: dict[str, JudgeResult] = {}
    for record in await _file_lines(judge, batch.output_file_id) + await _file_lines(judge, batch.error_file_id):
        cid, result = parse_openai_output_line(judge, record)
        try:
            parse_custom_id(cid)
        except ValueError:
            continue  # not one of ours; never let a stray line break the collection
        results[cid] = result
    return assemble_for_judge(judge, comparisons, results, cache=cache)
