"""The fallback chain and the runner: no pair is ever lost, every pair gets exactly one result."""

from __future__ import annotations

import asyncio

import pytest

from labeling import (
    AnthropicJudgeConfig,
    FallbackChain,
    JudgeFailure,
    JudgeRequest,
    Label,
    LabelFailure,
    LabelingConfig,
    OpenAIJudgeConfig,
    RewardModelJudge,
    build_chain,
    label_comparisons,
)
from tests.labeling.conftest import FAST_RETRY, KeywordScorer, expected_choice, make_comparisons
from tests.labeling.fake_providers import BIASED, OK, rate_limited, server_error


def config(fake, judges, **overrides) -> LabelingConfig:
    values = {
        "judges": judges,
        "openai": OpenAIJudgeConfig(api_key="sk-test", base_url=fake.openai_url, timeout_s=2.0),
        "anthropic": AnthropicJudgeConfig(api_key="sk-ant", base_url=fake.anthropic_url, timeout_s=2.0),
        "reward_scorer": KeywordScorer(),
        "retry": FAST_RETRY,
        "breaker_failure_threshold": 3,
        "breaker_reset_s": 60.0,
        **overrides,
    }
    return LabelingConfig(**values)


def label_all(built, comparisons, concurrency=4):
    seen: list[str] = []

    async def go():
        try:
            return await label_comparisons(
                comparisons, built.chain, concurrency=concurrency, on_result=lambda r: seen.append(r.comparison_id)
            )
        finally:
            await built.aclose()

    report = asyncio.run(go())
    return report, seen


def test_provider_failing_mid_batch_loses_no_pair(fake):
    """OpenAI answers 6 calls, then only 500s: its breaker opens, Anthropic takes over."""
    fake.openai.script.extend([OK] * 6)
    fake.openai.default = server_error(500)
    comparisons = make_comparisons(20)
    built = build_chain(config(fake, ["openai", "anthropic", "local"]))

    report, seen = label_all(built, comparisons)

    assert sorted(seen) == sorted(c.id for c in comparisons)  # exactly one result per pair
    assert not report.failures and len(report.labels) == 20
    by_id = {label.comparison_id: label for label in report.labels}
    for c in comparisons:
        assert by_id[c.id].choice == expected_choice(c)
        assert by_id[c.id].consistent
    judges = {label.judge for label in report.labels}
    assert judges == {"openai", "anthropic"}
    assert report.judges["openai"].labels >= 1 and report.judges["anthropic"].labels >= 1
    fallen_back = [label for label in report.labels if label.judge == "anthropic"]
    assert all(label.fallbacks and label.fallbacks[0].judge == "openai" for label in fallen_back)
    assert {f.kind for label in fallen_back for f in label.fallbacks} <= {"server_error", "circuit_open"}
    # The breaker stopped the calls: without it every remaining pair would cost 2 x 3 attempts.
    assert fake.openai.calls <= 6 + 3 * 3 + 4 * 2
    assert built.breakers["openai"].state == "open"


def test_everything_remote_down_falls_back_to_the_local_judge(fake):
    fake.openai.default = server_error(503)
    fake.anthropic.default = rate_limited(3600)  # asks for an hour: not worth waiting for
    comparisons = make_comparisons(6)
    report, _ = label_all(build_chain(config(fake, ["openai", "anthropic", "local"])), comparisons)

    assert [label.judge for label in report.labels] == ["local-rm"] * 6
    assert all(label.choice == expected_choice(c) for label, c in zip(report.labels, comparisons))
    assert report.judges["openai"].failed_pairs == 6
    assert report.judges["anthropic"].failure_kinds["rate_limit"] >= 1
    assert report.judges["local-rm"].cost_usd == 0.0


def test_when_every_judge_fails_the_pair_is_reported_not_lost(fake):
    fake.openai.default = server_error(500)
    comparisons = make_comparisons(3)
    report, seen = label_all(build_chain(config(fake, ["openai"], breaker_failure_threshold=100)), comparisons)

    assert not report.labels and len(report.failures) == 3 and len(seen) == 3
    assert all(isinstance(f, LabelFailure) and "openai: server_error" in f.reason for f in report.failures)


def test_position_biased_judge_gets_ties_and_zero_consistency(fake):
    fake.openai.default = BIASED  # always prefers whichever response it reads first
    comparisons = make_comparisons(4)
    report, _ = label_all(build_chain(config(fake, ["openai"])), comparisons)

    assert [label.choice for label in report.labels] == ["tie"] * 4
    assert all(label.confidence == 0.0 and not label.consistent for label in report.labels)
    assert report.judges["openai"].consistency_rate == 0.0


def test_unbiased_judge_is_fully_consistent_and_costs_are_reported(fake):
    comparisons = make_comparisons(4)
    report, _ = label_all(build_chain(config(fake, ["anthropic"])), comparisons)

    stats = report.judges["anthropic"]
    assert stats.consistency_rate == 1.0
    assert stats.cost_usd == pytest.approx(sum(label.cost_usd for label in report.labels))
    assert stats.cost_per_label == pytest.approx(stats.cost_usd / 4)
    assert report.to_dict()["judges"]["anthropic"]["labels"] == 4


def test_concurrency_is_bounded(fake):
    fake.openai.latency_s = 0.05
    report, _ = label_all(build_chain(config(fake, ["openai"])), make_comparisons(12), concurrency=3)
    assert len(report.labels) == 12
    assert 2 <= fake.openai.max_in_flight <= 3


class ExplodingJudge:
    name, provider, model, rubric_version = "broken", "local", "none", None

    async def judge(self, request):
        raise RuntimeError("bug in a judge")


def test_a_judge_that_raises_is_treated_as_a_failure(caplog):
    chain = FallbackChain([ExplodingJudge(), RewardModelJudge(KeywordScorer())])
    comparisons = make_comparisons(2)
    report = asyncio.run(label_comparisons(comparisons, chain))
    assert [label.judge for label in report.labels] == ["local-rm", "local-rm"]
    assert report.labels[0].fallbacks[0].kind == "error"
    assert "bug in a judge" in caplog.text


def test_budget_stops_paid_calls_before_overspending(fake):
    comparisons = make_comparisons(20)
    probe = build_chain(config(fake, ["openai"])).base_judges["openai"]
    estimate = probe.estimate_cost(JudgeRequest.from_comparison(comparisons[0], "ab"))
    # Each call reserves its pessimistic estimate and then settles at its (smaller) real cost, so
    # a budget of 3 estimates pays for a handful of calls, not for all 40.
    budget_usd = 3 * estimate
    built = build_chain(config(fake, ["openai", "local"], budget_usd=budget_usd))

    report, _ = label_all(built, comparisons, concurrency=1)

    assert len(report.labels) == 20  # the rest went to the free local judge
    spent = built.budget.spent_usd
    assert 0 < spent <= budget_usd
    # It refused only calls that might not fit: with one pair at a time (its two orders in
    # flight together), at most two estimates' worth of budget can be left unused.
    assert budget_usd - spent < 2.1 * estimate
    assert 0 < fake.openai.calls < 40
    assert {label.judge for label in report.labels} == {"openai", "local-rm"}
    assert report.judges["openai"].cost_usd == pytest.approx(spent)  # nothing spent goes unreported
    kinds = {f.kind for label in report.labels for f in label.fallbacks}
    assert kinds == {"budget_exhausted"}


def test_chain_needs_unique_judges_and_ids():
    with pytest.raises(ValueError, match="at least one"):
        FallbackChain([])
    judge = RewardModelJudge(KeywordScorer())
    with pytest.raises(ValueError, match="unique"):
        FallbackChain([judge, judge])
    duplicated = make_comparisons(2) + make_comparisons(1)
    with pytest.raises(ValueError, match="unique"):
        asyncio.run(label_comparisons(duplicated, FallbackChain([judge])))


def test_labels_record_provenance(fake):
    report, _ = label_all(build_chain(config(fake, ["openai"])), make_comparisons(1))
    label = report.labels[0]
    assert isinstance(label, Label)
    assert (label.judge, label.provider, label.model) == ("openai", "openai", "gpt-4o-mini-2024-07-18")
    assert label.rubric_version and len(label.rubric_version) == 16
    assert [v.preferred for v in label.verdicts] == ["first", "second"]  # A is better; shown first, then second
    assert label.input_tokens > 0 and label.cost_usd > 0 and label.latency_s > 0


def test_unavailable_judges_are_skipped(fake):
    built = build_chain(LabelingConfig(judges=["openai", "anthropic", "local"], reward_scorer=KeywordScorer()))
    assert built.chain.names == ["local-rm"] and built.skipped == ["openai", "anthropic"]
    with pytest.raises(ValueError, match="no judge available"):
        build_chain(LabelingConfig(judges=["openai"]))
    with pytest.raises(ValueError, match="unknown judge"):
        LabelingConfig(judges=["gemini"])


def test_failure_values_are_explicit():
    failure = JudgeFailure("rate_limit", "slow down", "openai", "openai", "m", retry_after_s=1.0)
    assert failure.retryable and not JudgeFailure("refusal", "no", "j", "p", "m").retryable
