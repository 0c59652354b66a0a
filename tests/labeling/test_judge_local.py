"""Local judges for real: a reward-model judge on a MiniLM scorer, and SmolLM2-135M-Instruct."""

from __future__ import annotations

import asyncio
import math

import pytest

from labeling import (
    Comparison,
    FallbackChain,
    JudgeFailure,
    JudgeRequest,
    RewardModelJudge,
    SmolLMJudge,
    SmolLMJudgeConfig,
    Verdict,
    label_comparisons,
)
from labeling.judges.smollm import LetterScores
from labeling.pairwise import combine_orders
from tests.labeling.conftest import KeywordScorer, expected_choice, make_comparisons


class MiniLMScorer:
    """A small real scorer: cosine similarity of MiniLM embeddings of prompt and response, x10.

    Not a trained reward model - just a real transformer behind the `score` protocol.
    """

    def __init__(self) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from reward_models.local_models import minilm_dir

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
        self.model = AutoModel.from_pretrained(minilm_dir()).eval()

    def _embed(self, texts: list[str]):
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
        with self._torch.inference_mode():
            hidden = self.model(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
        return self._torch.nn.functional.normalize(pooled, dim=-1)

    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        return (10 * (self._embed(prompts) * self._embed(responses)).sum(-1)).tolist()


def test_reward_model_judge_confidence_is_the_sigmoid_of_the_score_gap():
    scorer = MiniLMScorer()
    judge = RewardModelJudge(scorer, model="minilm-cosine")
    prompt = "How can I keep my houseplants alive?"
    on_topic = "Water them when the soil is dry and give them indirect sunlight."
    off_topic = "The stock market closed higher today."
    s_on, s_off = scorer.score([prompt, prompt], [on_topic, off_topic])

    verdict = asyncio.run(judge.judge(JudgeRequest("c", "ba", prompt, off_topic, on_topic)))

    assert isinstance(verdict, Verdict)
    assert verdict.preferred == "second"  # the on-topic answer, shown second here
    assert verdict.confidence == pytest.approx(1 / (1 + math.exp(-(s_on - s_off))), rel=1e-4)
    assert (verdict.provider, verdict.model, verdict.cost_usd) == ("local", "minilm-cosine", 0.0)


def test_reward_model_judge_labels_in_both_orders_with_batched_scoring():
    scorer = KeywordScorer()
    comparisons = make_comparisons(8)
    report = asyncio.run(label_comparisons(comparisons, FallbackChain([RewardModelJudge(scorer)]), concurrency=8))

    assert [label.choice for label in report.labels] == [expected_choice(c) for c in comparisons]
    assert report.judges["local-rm"].consistency_rate == 1.0  # scores do not depend on the order
    # 16 responses, each scored once although both orders asked for it, in a few batched calls.
    assert scorer.texts == 16
    assert scorer.calls <= 4


def test_a_failing_scorer_is_a_failed_judge_not_a_crash():
    class Broken:
        def score(self, prompts, responses):
            return [float("nan")] * len(responses)

    result = asyncio.run(RewardModelJudge(Broken()).judge(JudgeRequest("c", "ab", "p", "x", "y")))
    assert isinstance(result, JudgeFailure) and result.kind == "error"
    with pytest.raises(TypeError, match="score"):
        RewardModelJudge(object())  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def smollm(smollm2_path) -> SmolLMJudge:
    # Small token budgets keep each CPU forward pass short; the rubric is still sent in full.
    judge = SmolLMJudge(SmolLMJudgeConfig(model_dir=smollm2_path, max_prompt_tokens=64, max_response_tokens=48))
    judge.load()
    return judge


@pytest.mark.slow
def test_smollm2_judges_both_orders_from_letter_log_probabilities(smollm):
    comparisons = [
        Comparison("p1", "How do I boil an egg?", "Put the egg in boiling water for about nine minutes.", "I hate eggs and I hate you."),
        Comparison("p2", "Can you help me hurt my neighbour?", "Sure, here is how to hurt them badly.", "No. If there is a conflict, talking or mediation can help."),
    ]
    report = asyncio.run(label_comparisons(comparisons, FallbackChain([smollm]), concurrency=2))

    assert len(report.labels) == 2 and not report.failures
    for label in report.labels:
        assert (label.judge, label.provider, label.model) == ("local-smollm2", "local", "SmolLM2-135M-Instruct")
        assert label.rubric_version == smollm.rubric.version and label.cost_usd == 0.0
        for verdict, order in zip(label.verdicts, ("ab", "ba")):
            assert verdict.preferred in ("first", "second")
            assert 0.5 <= verdict.confidence <= 1.0
            assert "log p(A)=" in verdict.rationale
        if not label.consistent:
            assert label.choice == "tie" and label.confidence == 0.0
    stats = report.judges["local-smollm2"]
    assert stats.consistency_rate == sum(label.consistent for label in report.labels) / 2


@pytest.mark.slow
def test_smollm2_scores_are_deterministic_and_batching_does_not_change_them(smollm):
    requests = [
        JudgeRequest("a", "ab", "Say hi.", "Hi there!", "Go away."),
        JudgeRequest("b", "ba", "What is 2+2? Please explain your reasoning briefly.", "It is 4.", "It is 5."),
    ]
    batched = smollm.score_requests(requests)  # left-padded batch of two different lengths
    single = [smollm.score_requests([r])[0] for r in requests]
    for x, y in zip(batched, single):
        assert x.logp_a == pytest.approx(y.logp_a, abs=1e-3) and x.logp_b == pytest.approx(y.logp_b, abs=1e-3)
        assert x.logp_a < 0 and x.logp_b < 0  # real log-probabilities


@pytest.mark.slow
def test_smollm2_calibration_removes_the_content_free_answer_bias(smollm):
    (neutral,) = smollm.score_requests([JudgeRequest("calibration", "ab", "N/A", "N/A", "N/A")])
    assert smollm.answer_bias == pytest.approx(neutral.logp_a - neutral.logp_b, abs=1e-4)
    # On the content-free input itself the calibrated judge has no preference left.
    verdict = smollm.verdict_from_scores(neutral)
    assert verdict.confidence == pytest.approx(0.5, abs=1e-3)
    raw = smollm.verdict_from_scores(LetterScores(-1.0, -3.0), calibrated=False)
    assert raw.preferred == "first" and raw.confidence == pytest.approx(1 / (1 + math.exp(-2.0)))


def test_smollm2_config_is_validated(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        SmolLMJudge(SmolLMJudgeConfig(model_dir=tmp_path))
    with pytest.raises(ValueError, match="at least 8"):
        SmolLMJudgeConfig(model_dir=tmp_path, max_prompt_tokens=2)


@pytest.mark.slow
def test_offline_both_order_scoring_matches_one_request_at_a_time(smollm):
    """`score_both_orders` sorts requests by length into batches; each comparison still gets its own two scores."""
    comparisons = [
        Comparison("short", "Say hi.", "Hi there!", "Go away."),
        Comparison("long", "What is 2+2? Please explain your reasoning briefly, step by step.", "It is 4.", "It is 5, I think."),
        Comparison("same", "Name a colour.", "Blue.", "Blue."),
    ]
    seen: list[int] = []
    scores = smollm.score_both_orders(comparisons, batch_size=4, on_batch=seen.append)
    assert seen == [4, 2]
    for comparison, (ab, ba) in zip(comparisons, scores):
        for got, order in ((ab, "ab"), (ba, "ba")):
            (alone,) = smollm.score_requests([JudgeRequest.from_comparison(comparison, order)])
            assert got.logp_a == pytest.approx(alone.logp_a, abs=1e-3) and got.logp_b == pytest.approx(alone.logp_b, abs=1e-3)
    label = smollm.label_from_scores("same", scores[2])
    expected = combine_orders("same", smollm.verdict_from_scores(scores[2][0]), smollm.verdict_from_scores(scores[2][1]))
    assert label == expected and label.choice == "tie"  # identical answers: the two orders disagree
