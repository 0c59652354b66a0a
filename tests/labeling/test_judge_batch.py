"""OpenAI Batch API and Anthropic Message Batches, through the real SDKs, at half price."""

from __future__ import annotations

import asyncio
import json

import pytest

from labeling import Budget, InMemoryJudgeCache, JudgeRequest, Verdict
from labeling.batch import (
    BatchError,
    anthropic_batch_status,
    build_openai_batch_lines,
    collect_anthropic_batch,
    collect_openai_batch,
    custom_id,
    openai_batch_status,
    parse_custom_id,
    plan_anthropic_batch,
    plan_openai_batch,
    submit_anthropic_batch,
    submit_openai_batch,
)
from labeling.cache import CachedJudge
from tests.labeling.conftest import expected_choice, make_comparisons


def test_openai_batch_round_trip(fake, openai_judge):
    judge = openai_judge()
    comparisons = make_comparisons(4)
    fake.batch_failing_ids = {custom_id("c3", "ba")}
    fake.batch_polls_before_done = 2

    async def scenario():
        plan = plan_openai_batch(judge, comparisons)
        submission = await submit_openai_batch(judge, plan)
        running = await openai_batch_status(judge, submission.batch_id)
        with pytest.raises(BatchError, match="still"):
            await collect_openai_batch(judge, submission.batch_id, comparisons)
        ended = await openai_batch_status(judge, submission.batch_id)
        collection = await collect_openai_batch(judge, submission.batch_id, comparisons)
        sync = await judge.judge(JudgeRequest.from_comparison(comparisons[0], "ab"))
        return plan, submission, running, ended, collection, sync

    plan, submission, running, ended, collection, sync = asyncio.run(scenario())

    # What went over the wire: a JSONL file uploaded for the batch, then a batch on it.
    (upload,) = fake.calls_to("/v1/files")
    assert b'name="purpose"' in upload.body and b"batch" in upload.body
    lines = [json.loads(line) for line in fake._files[submission.input_file_id].decode().splitlines()]
    assert lines == build_openai_batch_lines(judge, plan)
    assert lines[0]["url"] == "/v1/chat/completions" and lines[0]["body"] == judge.request_body(plan.requests[0].request)
    (create,) = fake.calls_to("/v1/batches")
    assert create.body["input_file_id"] == submission.input_file_id and create.body["completion_window"] == "24h"
    assert submission.request_count == 8 and submission.comparison_ids == ("c0", "c1", "c2", "c3")

    assert not running.done and ended.done and ended.state == "ended" and ended.failed == 1
    assert [label.comparison_id for label in collection.labels] == ["c0", "c1", "c2"]
    assert all(label.choice == expected_choice(c) for label, c in zip(collection.labels, comparisons))
    assert all(label.batch for label in collection.labels)
    (failure,) = collection.failures
    assert failure.comparison_id == "c3" and failure.failures[0].kind == "server_error"
    # Same usage as the synchronous call, half the price.
    batch_ab = collection.labels[0].verdicts[0]
    assert isinstance(sync, Verdict)
    assert batch_ab.input_tokens == sync.input_tokens
    assert batch_ab.cost_usd == pytest.approx(sync.cost_usd / 2)
    assert plan.estimated_cost_usd == pytest.approx(
        sum(judge.estimate_cost(r.request) for r in plan.requests) / 2
    )


def test_anthropic_batch_round_trip(fake, anthropic_judge):
    judge = anthropic_judge()
    comparisons = make_comparisons(3)
    fake.batch_failing_ids = {custom_id("c1", "ab")}

    async def scenario():
        plan = plan_anthropic_batch(judge, comparisons)
        submission = await submit_anthropic_batch(judge, plan)
        running = await anthropic_batch_status(judge, submission.batch_id)
        ended = await anthropic_batch_status(judge, submission.batch_id)
        collection = await collect_anthropic_batch(judge, submission.batch_id, comparisons)
        return plan, submission, running, ended, collection

    plan, _submission, running, ended, collection = asyncio.run(scenario())

    (create,) = fake.calls_to("/v1/messages/batches")
    assert [r["custom_id"] for r in create.body["requests"]] == [r.custom_id for r in plan.requests]
    assert create.body["requests"][0]["params"]["tool_choice"] == {"type": "tool", "name": "record_verdict"}
    assert running.state == "in_progress" and ended.state == "ended" and ended.failed == 1
    assert [label.comparison_id for label in collection.labels] == ["c0", "c2"]
    assert all(label.batch and label.consistent for label in collection.labels)
    assert collection.failures[0].comparison_id == "c1"
    assert collection.failures[0].failures[0].kind == "server_error"  # overloaded_error inside the batch


def test_cached_orders_are_not_resubmitted_and_results_fill_the_cache(fake, openai_judge):
    judge = openai_judge()
    cache = InMemoryJudgeCache()
    comparisons = make_comparisons(2)

    async def scenario():
        cached = CachedJudge(judge, cache, temperature=judge.config.temperature)
        await cached.judge(JudgeRequest.from_comparison(comparisons[0], "ab"))  # one order already paid for
        plan = plan_openai_batch(judge, comparisons, cache=cache)
        submission = await submit_openai_batch(judge, plan)
        await openai_batch_status(judge, submission.batch_id)
        await openai_batch_status(judge, submission.batch_id)
        return plan, await collect_openai_batch(judge, submission.batch_id, comparisons, cache=cache)

    plan, collection = asyncio.run(scenario())

    assert [r.custom_id for r in plan.requests] == ["c0__ba", "c1__ab", "c1__ba"]
    assert len(collection.labels) == 2
    assert collection.labels[0].verdicts[0].cached and not collection.labels[0].verdicts[1].cached
    assert len(cache) == 4  # the batch results are remembered for synchronous runs too


def test_budget_leaves_out_what_does_not_fit(openai_judge):
    judge = openai_judge()
    comparisons = make_comparisons(5)
    per_pair = sum(judge.estimate_cost(JudgeRequest.from_comparison(comparisons[0], o), batch=True) for o in ("ab", "ba"))
    budget = Budget(per_pair * 2.5)
    plan = plan_openai_batch(judge, comparisons, budget=budget)
    assert plan.comparison_ids == ["c0", "c1"] and plan.left_out_for_budget == ["c2", "c3", "c4"]
    assert plan.estimated_cost_usd <= budget.limit_usd


def test_custom_ids_round_trip_and_are_validated():
    assert parse_custom_id(custom_id("cmp-42_x", "ba")) == ("cmp-42_x", "ba")
    with pytest.raises(ValueError, match="cannot name a batch request"):
        custom_id("has space", "ab")
    with pytest.raises(ValueError, match="not a judge batch request"):
        parse_custom_id("c1__xy")


def test_empty_plan_is_not_submitted(openai_judge):
    judge = openai_judge()
    plan = plan_openai_batch(judge, [], budget=Budget(0))
    with pytest.raises(BatchError, match="nothing to submit"):
        asyncio.run(submit_openai_batch(judge, plan))
