"""Backend for any OpenAI-compatible server (vLLM, TGI, Ollama, ...) through the official ``openai`` SDK.

Scoring uses the legacy completions endpoint with ``echo=True`` and ``logprobs``: the server returns the log
probability of every prompt token, and the completion's score is the sum over the tokens that start at or after the
end of the prompt text (``text_offset``). vLLM supports this; servers that do not return prompt log-probabilities
(Ollama today) can still draft text but cannot serve a finite-action policy with exact propensities, and this
backend says so instead of guessing.

Prompts are rendered locally (ChatML by default, the format of SmolLM2/Qwen-style models) so the text scored here is
the text a local backend and DPO training would see. Generation also goes through the completions endpoint with
that same rendered prompt.

Not here: retries and timeouts beyond the SDK's own (``max_retries``, ``timeout`` are passed through), API-key
discovery (the key is an argument; the app reads it from settings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from policies.backends.base import Messages, render_chatml


class BackendCapabilityError(RuntimeError):
    """The remote server does not provide what the operation needs (e.g. prompt log-probabilities)."""


class OpenAICompatibleBackend:
    """A model served behind ``base_url`` (e.g. ``http://vllm:8000/v1``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str = "EMPTY",
        end_of_turn: str = "<|im_end|>",
        render: Callable[[Messages], str] = render_chatml,
        timeout: float = 30.0,
        max_retries: int = 2,
        client=None,
    ):
        from openai import OpenAI

        self.client = client or OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.model = model
        self.name = f"openai:{model}"
        self._end_of_turn = end_of_turn
        self._render = render

    @property
    def end_of_turn(self) -> str:
        return self._end_of_turn

    def render(self, messages: Messages) -> str:
        return self._render(messages)

    def completion_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        if not completions:
            raise ValueError("need at least one completion to score")
        texts = [p + c + self.end_of_turn for p in prompts for c in completions]
        # max_tokens=1: some servers reject 0; the one generated token is ignored (we read prompt logprobs only).
        response = self.client.completions.create(
            model=self.model, prompt=texts, max_tokens=1, echo=True, logprobs=0, temperature=0.0
        )
        choices = sorted(response.choices, key=lambda c: c.index)
        if len(choices) != len(texts):
            raise BackendCapabilityError(f"server returned {len(choices)} choices for {len(texts)} prompts")
        out = np.empty(len(texts), dtype=np.float64)
        for i, choice in enumerate(choices):
            prompt_chars = len(prompts[i // len(completions)])
            total_chars = len(texts[i])
            lp = choice.logprobs
            if lp is None or not lp.token_logprobs or lp.text_offset is None:
                raise BackendCapabilityError(
                    f"{self.name}: the server returned no prompt log-probabilities (echo+logprobs); "
                    "it cannot score a finite action set"
                )
            score = 0.0
            for offset, value in zip(lp.text_offset, lp.token_logprobs):
                # Tokens of the scored text that start inside the completion; the echoed generated token (offset
                # at or past the end of the text) is excluded.
                if prompt_chars <= offset < total_chars:
                    if value is None:
                        raise BackendCapabilityError(f"{self.name}: missing log-probability for a completion token")
                    score += float(value)
            out[i] = score
        return out.reshape(len(prompts), len(completions))

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
        max_time: float | None = None,
    ) -> list[str]:
        response = self.client.completions.create(
            model=self.model,
            prompt=list(prompts),
            max_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=[self.end_of_turn],
            **({"timeout": max_time} if max_time is not None else {}),
        )
        choices = sorted(response.choices, key=lambda c: c.index)
        return [c.text.strip() for c in choices]
