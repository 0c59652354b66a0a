"""An identical (judge model, rubric version, pair) is never billed twice."""

from __future__ import annotations

import asyncio

from labeling import (
    InMemoryJudgeCache,
    LabelingConfig,
    OpenAIJudgeConfig,
    Rubric,
    build_chain,
    label_comparisons,
)
from tests.labeling.conftest import FAST_RETRY, make_comparisons
from tests.labeling.fake_providers import MALFORMED


def run_once(fake, cache, comparisons, rubric=None):
    built = build_chain(
        LabelingConfig(
            judges=["openai"],
            openai=OpenAIJudgeConfig(api_key="sk-test", base_url=fake.openai_url, timeout_s=2.0),
            rubric=rubric or Rubric(),
            retry=FAST_RETRY,
        ),
        cache=cache,
    )

    async def go():
        try:
            return await label_comparisons(comparisons, built.chain)
        finally:
            await built.aclose()

    return asyncio.run(go())


def test_second_run_is_served_from_the_cache(fake):
    cache = InMemoryJudgeCache()
    comparisons = make_comparisons(3)
    first = run_once(fake, cache, comparisons)
    calls = fake.openai.calls

    # Same pairs under new ids (e.g. imported twice): still not billed again.
    renamed = make_comparisons(3, prefix="again-")
    second = run_once(fake, cache, renamed)

    assert calls == 6 and fake.openai.calls == 6
    assert len(cache) == 6  # one entry per pair and order
    assert all(label.cached for label in second.labels)
    assert second.cost_usd == 0.0 and first.cost_usd > 0
    assert [label.choice for label in second.labels] == [label.choice for label in first.labels]
    assert second.judges["openai"].cached_verdicts == 6


def test_a_new_rubric_is_a_cache_miss(fake):
    cache = InMemoryJudgeCache()
    comparisons = make_comparisons(2)
    run_once(fake, cache, comparisons)
    run_once(fake, cache, comparisons, rubric=Rubric("Prefer the more concise response."))
    assert fake.openai.calls == 8


def test_failures_are_not_cached(fake):
    cache = InMemoryJudgeCache()
    fake.openai.default = MALFORMED
    report = run_once(fake, cache, make_comparisons(1))
    assert report.failures and len(cache) == 0


def test_a_corrupt_entry_is_ignored(fake):
    cache = InMemoryJudgeCache()
    comparisons = make_comparisons(1)
    run_once(fake, cache, comparisons)
    for key in list(cache._entries):
        cache.put(key, {"preferred": "sideways"})
    report = run_once(fake, cache, comparisons)
    assert len(report.labels) == 1 and not report.labels[0].cached
    assert fake.openai.calls == 4
