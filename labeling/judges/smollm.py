"""A local instruct-model judge (SmolLM2-135M-Instruct by default): no network, no key, no cost.

A 135M-parameter model cannot be trusted to write a well-formed verdict, so it is not asked to
generate one. It reads the same rubric and the same rendered comparison as the API judges, is
asked to answer with one letter, and the judge compares the log-probabilities of "A" and "B" as
the first answer token: the preference is the likelier letter and the confidence is the
two-way softmax of the pair. Such a small model favours one letter whatever the content; by
default that prior is measured once on a content-free comparison and subtracted ("calibrate
before use", Zhao et al. 2021). Like every judge it is run in both orders by `labeling.pairwise`,
which exposes (and turns into ties) whatever position bias remains.

Long conversations are cut to a token budget (the end of the conversation and the start of each
response are kept) because a CPU forward pass grows with the square of the length.

This module does not locate the weights (`reward_models.local_models.smollm2_dir` does) and does
not train anything.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeling.judges.batching import MicroBatcher
from labeling.judges.reward_model import sigmoid
from labeling.pairwise import combine_orders
from labeling.rubric import Rubric, render_comparison
from labeling.verdicts import Comparison, JudgeFailure, JudgeRequest, JudgeResult, Label, Verdict

_QUESTION = "\n\nWhich response is better according to the rubric? Answer with a single letter: A or B."


@dataclass(frozen=True)
class SmolLMJudgeConfig:
    # A directory, or a function returning one: then the weights are located (and, for the packaged
    # SmolLM2, converted) only when the judge is first used - a fallback that is never reached
    # costs nothing.
    model_dir: Path | Callable[[], Path]
    model_name: str | None = None  # provenance name; default: the directory's name
    max_prompt_tokens: int = 384  # the end of the conversation is kept
    max_response_tokens: int = 160  # the start of each response is kept
    max_batch: int = 4
    device: str = "cpu"
    calibrate: bool = True  # subtract the model's answer bias measured on a content-free comparison
    name: str = "local-smollm2"

    def __post_init__(self) -> None:
        if self.max_prompt_tokens < 8 or self.max_response_tokens < 8:
            raise ValueError("token budgets must be at least 8")


@dataclass(frozen=True)
class LetterScores:
    logp_a: float
    logp_b: float


class SmolLMJudge:
    """Prefers the response whose letter the local model finds likelier as its answer."""

    provider = "local"

    def __init__(self, config: SmolLMJudgeConfig, *, rubric: Rubric | None = None) -> None:
        if callable(config.model_dir):
            self._model_dir: Path | None = None
            self.model = config.model_name or "local-instruct-model"
        else:
            self._model_dir = self._checked(Path(config.model_dir))
            self.model = config.model_name or self._model_dir.name
        self.config = config
        self.rubric = rubric or Rubric()
        self.name = config.name
        self.rubric_version: str | None = self.rubric.version
        self._tokenizer: Any = None
        self._model: Any = None
        self._letter_ids: tuple[int, int] | None = None
        self.answer_bias = 0.0  # log p(A) - log p(B) on a content-free comparison (0 until loaded)
        self._batcher: MicroBatcher[JudgeRequest, LetterScores] = MicroBatcher(self.score_requests, config.max_batch)

    @staticmethod
    def _checked(path: Path) -> Path:
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no model checkpoint (config.json) under {path}")
        return path

    def load(self) -> None:
        """Load the tokenizer and weights (done lazily on first use; call early to pay it up front)."""
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if self._model_dir is None:
            self._model_dir = self._checked(Path(self.config.model_dir()))  # type: ignore[operator]
        tokenizer = AutoTokenizer.from_pretrained(self._model_dir)
        tokenizer.padding_side = "left"  # so the last position is the answer position in a batch
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        ids = []
        for letter in ("A", "B"):
            encoded = tokenizer.encode(letter, add_special_tokens=False)
            if len(encoded) != 1:
                raise ValueError(f"the tokenizer splits {letter!r} into {len(encoded)} tokens; need exactly one")
            ids.append(encoded[0])
        model = AutoModelForCausalLM.from_pretrained(self._model_dir, dtype=torch.float32)
        model.to(self.config.device).eval()
        self._tokenizer, self._model, self._letter_ids = tokenizer, model, (ids[0], ids[1])
        if self.config.calibrate:
            # "Calibrate before use" (Zhao et al., 2021): a small model prefers one letter whatever
            # the content; its preference on a comparison with no content measures that prior.
            (neutral,) = self.score_requests([JudgeRequest("calibration", "ab", "N/A", "N/A", "N/A")])
            self.answer_bias = neutral.logp_a - neutral.logp_b

    def _truncate(self, text: str, budget: int, *, keep_end: bool) -> str:
        ids = self._tokenizer.encode(text, add_special_tokens=False)
        if len(ids) <= budget:
            return text
        kept = ids[-budget:] if keep_end else ids[:budget]
        cut = self._tokenizer.decode(kept)
        return "..." + cut if keep_end else cut + "..."

    def render(self, request: JudgeRequest) -> str:
        """The full chat-templated input, ending where the model's answer letter would start."""
        self.load()
        short = JudgeRequest(
            request.comparison_id,
            request.order,
            self._truncate(request.prompt, self.config.max_prompt_tokens, keep_end=True),
            self._truncate(request.first, self.config.max_response_tokens, keep_end=False),
            self._truncate(request.second, self.config.max_response_tokens, keep_end=False),
        )
        messages = [
            {"role": "system", "content": self.rubric.text},
            {"role": "user", "content": render_comparison(short) + _QUESTION},
        ]
        return self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def score_requests(self, requests: list[JudgeRequest]) -> list[LetterScores]:
        """Log-probabilities of answering "A" and "B" for each request, in one batched forward pass."""
        import torch

        if self._model is None:
            self.load()
        texts = [self.render(r) for r in requests]
        encoded = self._tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        encoded = {k: v.to(self.config.device) for k, v in encoded.items()}
        with torch.inference_mode():
            logits = self._model(**encoded).logits[:, -1, :].float()
        logp = torch.log_softmax(logits, dim=-1)
        a, b = self._letter_ids  # type: ignore[misc]
        return [LetterScores(float(row[a]), float(row[b])) for row in logp]

    def score_both_orders(self, comparisons: Sequence[Comparison], batch_size: int = 8,
                          on_batch: Callable[[int], None] | None = None) -> list[tuple[LetterScores, LetterScores]]:
        """Letter scores of every comparison shown in both orders ("ab", "ba"), for offline evaluation.

        Requests of similar length share a batch (less padding); ``on_batch(n)`` reports progress.
        """
        requests = [JudgeRequest.from_comparison(c, order) for c in comparisons for order in ("ab", "ba")]
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt) + len(requests[i].first) + len(requests[i].second))
        scores: list[LetterScores | None] = [None] * len(requests)
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for index, result in zip(chunk, self.score_requests([requests[i] for i in chunk])):
                scores[index] = result
            if on_batch is not None:
                on_batch(len(chunk))
        return [(scores[2 * k], scores[2 * k + 1]) for k in range(len(comparisons))]  # type: ignore[misc]

    def label_from_scores(self, comparison_id: str, scores: tuple[LetterScores, LetterScores], *,
                          calibrated: bool = True) -> Label:
        """The position-controlled label (`labeling.pairwise.combine_orders`) of one comparison's two scores."""
        ab, ba = (self.verdict_from_scores(s, calibrated=calibrated) for s in scores)
        return combine_orders(comparison_id, ab, ba)

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        started = time.perf_counter()
        try:
            scores = await self._batcher.submit(request)
        except Exception as exc:  # noqa: BLE001 - a broken local model is a failed judge, not a lost pair
            return JudgeFailure("error", f"local model failed: {exc!r}"[:500], self.name, self.provider, self.model)
        return self.verdict_from_scores(scores, latency_s=time.perf_counter() - started)

    def verdict_from_scores(self, scores: LetterScores, *, calibrated: bool = True, latency_s: float = 0.0) -> Verdict:
        """The verdict the letter log-probabilities stand for (with or without the bias correction)."""
        bias = self.answer_bias if calibrated else 0.0
        diff = scores.logp_a - scores.logp_b - bias
        p_first = sigmoid(diff)  # the softmax restricted to the two letters, bias removed
        return Verdict(
            preferred="first" if diff > 0 else "second" if diff < 0 else "tie",
            confidence=max(p_first, 1.0 - p_first),
            rationale=f"log p(A)={scores.logp_a:.3f}, log p(B)={scores.logp_b:.3f}, bias={bias:.3f}",
            judge=self.name,
            provider=self.provider,
            model=self.model,
            rubric_version=self.rubric_version,
            latency_s=latency_s,
        )
