"""What a policy needs from a language model, independent of where the model runs.

Two operations cover both kinds of decision:

- ``completion_logprobs(prompts, completions)``: the log-likelihood of each candidate completion after each prompt
  (finite action sets are scored this way: one completion per action);
- ``generate(prompts, ...)``: sample text after each prompt (free-text decisions, online RL evaluation).

Prompts are plain strings already rendered with the model's chat format (``render``), so the same text is scored at
decision time, trained on by DPO and sent to a remote server. A completion is scored *with* the end-of-turn marker
appended (``end_of_turn``), exactly as TRL's DPOTrainer appends the EOS token to chosen/rejected texts: "bill" and
"billing" are then different complete answers rather than one being a prefix of the other.

A backend may also count tokens (``count_tokens(text)``) and cut text to a token budget (``fit_tokens(text, n)``)
so that decision types can bound what reaches a prompt; one without a tokenizer in process (a remote endpoint)
uses the byte-based estimates here. ``generate`` takes ``max_time`` (seconds), a wall-clock cap per call.

This module holds only the protocol and the chat-format helpers; it loads no model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

Messages = Sequence[dict[str, str]]


@runtime_checkable
class PolicyBackend(Protocol):
    """A language model a policy can score and sample from."""

    name: str

    @property
    def end_of_turn(self) -> str:
        """Text that closes an assistant answer (the EOS token for chat models)."""
        ...

    def render(self, messages: Messages) -> str:
        """The prompt string for ``messages``, ending where the assistant's answer starts."""
        ...

    def completion_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """Array ``(len(prompts), len(completions))`` of ``log p(completion + end_of_turn | prompt)``."""
        ...

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
        """One sampled continuation per prompt (end-of-turn stripped); ``temperature=0`` is greedy; generation
        stops after ``max_time`` seconds with the text so far."""
        ...


CHARS_PER_TOKEN_CAP = 16
"""Text is pre-cut to ``max_tokens * 16`` characters before tokenising (no BPE vocabulary averages more characters
per token over a field), so bounding a 1 MB value costs as much as bounding a short one; a request whose text is
longer than that for its whole token limit can be refused without tokenising it."""

BYTES_PER_TOKEN = 3
"""For estimates without a tokenizer: BPE vocabularies average 3-4 bytes of UTF-8 per token on English text."""


def approx_count_tokens(text: str) -> int:
    """An estimate of ``text``'s token count for a backend without a tokenizer in process (ceil of bytes / 3)."""
    return -(-len(text.encode("utf-8", "replace")) // BYTES_PER_TOKEN)


def approx_fit_tokens(text: str, max_tokens: int) -> str:
    """``text`` cut so that :func:`approx_count_tokens` of it is at most ``max_tokens`` (on a character boundary)."""
    limit = max_tokens * BYTES_PER_TOKEN
    data = text.encode("utf-8", "replace")
    return text if len(data) <= limit else data[:limit].decode("utf-8", "ignore")


def fit_tokens(backend: object, text: str, max_tokens: int) -> str:
    """``text`` cut to at most ``max_tokens`` of ``backend``'s tokens (its own ``fit_tokens``, else the estimate)."""
    own = getattr(backend, "fit_tokens", None)
    return own(text, max_tokens) if own is not None else approx_fit_tokens(text, max_tokens)


def count_tokens(backend: object, text: str) -> int:
    """``backend``'s token count of ``text`` (its own ``count_tokens``, else the estimate)."""
    own = getattr(backend, "count_tokens", None)
    return own(text) if own is not None else approx_count_tokens(text)


def render_chatml(messages: Messages) -> str:
    """ChatML, the format of SmolLM2, Qwen and many vLLM-served models (used when no tokenizer template exists)."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


def render_plain(messages: Messages) -> str:
    """A minimal ``role: content`` format for tokenizers without a chat template (tiny test models)."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
