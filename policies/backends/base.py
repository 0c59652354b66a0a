"""What a policy needs from a language model, independent of where the model runs.

Two operations cover both kinds of decision:

- ``completion_logprobs(prompts, completions)``: the log-likelihood of each candidate completion after each prompt
  (finite action sets are scored this way: one completion per action);
- ``generate(prompts, ...)``: sample text after each prompt (free-text decisions, online RL evaluation).

Prompts are plain strings already rendered with the model's chat format (``render``), so the same text is scored at
decision time, trained on by DPO and sent to a remote server. A completion is scored *with* the end-of-turn marker
appended (``end_of_turn``), exactly as TRL's DPOTrainer appends the EOS token to chosen/rejected texts: "bill" and
"billing" are then different complete answers rather than one being a prefix of the other.

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
    ) -> list[str]:
        """One sampled continuation per prompt (end-of-turn stripped); ``temperature=0`` is greedy."""
        ...


def render_chatml(messages: Messages) -> str:
    """ChatML, the format of SmolLM2, Qwen and many vLLM-served models (used when no tokenizer template exists)."""
    parts = [f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


def render_plain(messages: Messages) -> str:
    """A minimal ``role: content`` format for tokenizers without a chat template (tiny test models)."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
