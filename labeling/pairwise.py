"""Position-bias control: judge every comparison in both orders and combine the two verdicts.

LLM judges favour whichever response they read first (or second) more often than the content
justifies. Each comparison is therefore judged twice, once with response A shown first ("ab") and
once with response B shown first ("ba"). When both orders name the same winner (or both say tie)
the label is that answer with the mean confidence; when they disagree the judge was answering
the position rather than the content, and the label is a tie with confidence 0.

This module does not choose judges or retry them; `labeling.chain` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AbstractAsyncContextManager

from labeling.verdicts import (
    Choice,
    Comparison,
    Judge,
    JudgeFailure,
    JudgeRequest,
    JudgeResult,
    Label,
    Order,
    Verdict,
)

log = logging.getLogger(__name__)

INCONSISTENT_CONFIDENCE = 0.0
"""Confidence of the tie given to a pair whose two orders disagree: it carries no preference."""


def choice_of(verdict: Verdict, order: Order) -> Choice:
    """Translate a single-order verdict ("first"/"second") back to the comparison's A/B."""
    if verdict.preferred == "tie":
        return "tie"
    first_is_a = order == "ab"
    if verdict.preferred == "first":
        return "a" if first_is_a else "b"
    return "b" if first_is_a else "a"


def combine_orders(
    comparison_id: str, ab: Verdict, ba: Verdict, fallbacks: tuple[JudgeFailure, ...] = ()
) -> Label:
    """One label from the two single-order verdicts of the same judge."""
    first, second = choice_of(ab, "ab"), choice_of(ba, "ba")
    consistent = first == second
    if consistent:
        choice: Choice = first
        confidence = (ab.confidence + ba.confidence) / 2
        rationale = ab.rationale
    else:
        choice = "tie"
        confidence = INCONSISTENT_CONFIDENCE
        rationale = (
            f"inconsistent across orders: {first} with A shown first, {second} with B shown first. "
            f"{ab.rationale}"
        ).strip()
    return Label(
        comparison_id=comparison_id,
        choice=choice,
        confidence=confidence,
        consistent=consistent,
        rationale=rationale,
        judge=ab.judge,
        provider=ab.provider,
        model=ab.model,
        rubric_version=ab.rubric_version,
        input_tokens=ab.input_tokens + ba.input_tokens,
        output_tokens=ab.output_tokens + ba.output_tokens,
        cost_usd=ab.cost_usd + ba.cost_usd + sum(f.cost_usd for f in fallbacks),
        latency_s=max(ab.latency_s, ba.latency_s),  # the two orders run concurrently
        cached=ab.cached and ba.cached,
        batch=ab.batch and ba.batch,
        verdicts=(ab, ba),
        fallbacks=fallbacks,
    )


async def _call(judge: Judge, request: JudgeRequest, limiter: AbstractAsyncContextManager | None) -> JudgeResult:
    try:
        async with limiter if limiter is not None else contextlib.nullcontext():
            return await judge.judge(request)
    except Exception as exc:
        # A judge that raises instead of returning a failure has a bug; the pair must still move
        # on to the next judge, and the traceback must reach the logs.
        log.exception("judge %s raised on %s/%s", judge.name, request.comparison_id, request.order)
        return JudgeFailure("error", repr(exc)[:500], judge.name, judge.provider, judge.model)


async def judge_both_orders(
    judge: Judge, comparison: Comparison, limiter: AbstractAsyncContextManager | None = None
) -> tuple[Verdict, Verdict] | JudgeFailure:
    """Both single-order verdicts of one judge, or the failure that stopped it.

    A failure's `cost_usd` includes whatever the other order spent, so no money goes unaccounted.
    `limiter` (e.g. an `asyncio.Semaphore`) bounds how many judge calls are in flight.
    """
    ab, ba = await asyncio.gather(
        _call(judge, JudgeRequest.from_comparison(comparison, "ab"), limiter),
        _call(judge, JudgeRequest.from_comparison(comparison, "ba"), limiter),
    )
    failure = ab if isinstance(ab, JudgeFailure) else ba if isinstance(ba, JudgeFailure) else None
    if failure is not None:
        return failure.with_(
            cost_usd=ab.cost_usd + ba.cost_usd,
            input_tokens=ab.input_tokens + ba.input_tokens,
            output_tokens=ab.output_tokens + ba.output_tokens,
        )
    return ab, ba  # type: ignore[return-value]
