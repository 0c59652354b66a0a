"""How a (prompt, response) pair becomes the token ids a reward model reads.

Training and scoring must encode text identically, or a trained model is scored on inputs it
never saw; both go through ``encode`` with the ``EncodingSpec`` stored in the artifact manifest.

Truncation keeps what matters for a preference: the response (its first ``max_response_tokens``
tokens) and the *end* of the prompt (the last turns). Prompts are cut from the left. TRL's own
preprocessing drops over-long examples instead, which would silently remove the long
conversations from training; we tokenize ahead and hand TRL ``chosen_ids``/``rejected_ids``.

Encoder models (BERT, MiniLM) read ``[CLS] prompt [SEP] response [SEP]`` and score the [CLS]
position; decoder models read ``prompt response <eos>`` and score the last token (which, being
the EOS, has attended to the whole sequence). A decoder whose head pools the response's tokens
(``mean_pooled``) reads ``prompt <marker> response <eos>``: ``response_marker`` names the special
token that tells it where the response starts. This module knows nothing about training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["EncodingSpec", "encode", "encode_many", "marker_id", "prepare_tokenizer"]


@dataclass(frozen=True)
class EncodingSpec:
    """Text layout and truncation; saved with the model so the scorer encodes the same way."""

    max_length: int = 256
    max_response_tokens: int = 128
    response_prefix: str = "\n\nAssistant:"
    response_marker: str | None = None

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8 tokens, got {self.max_length}")
        if not 1 <= self.max_response_tokens < self.max_length:
            raise ValueError(
                f"max_response_tokens must be in [1, max_length), got {self.max_response_tokens} with max_length {self.max_length}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: dict) -> EncodingSpec:
        return cls(**{k: obj[k] for k in ("max_length", "max_response_tokens", "response_prefix", "response_marker") if k in obj})


def prepare_tokenizer(tokenizer):
    """Give the tokenizer a padding token that is not its EOS, when it can.

    Sequence-classification heads on decoders find "the last real token" as the last token that is
    not ``pad_token_id``. When pad == eos (SmolLM2 ships that way) the appended EOS would count as
    padding and the reward would be read one token early; an unused distinct token avoids that.
    """
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        if tokenizer.unk_token is not None and tokenizer.unk_token != tokenizer.eos_token:
            tokenizer.pad_token = tokenizer.unk_token
        elif tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # last resort: reward read one token early
    if tokenizer.pad_token is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no pad, unk or eos token to pad with")
    tokenizer.padding_side = "right"
    return tokenizer


def marker_id(tokenizer, marker: str) -> int:
    """The id of a single special token, or a clear error when the tokenizer has no such token."""
    token_id = tokenizer.convert_tokens_to_ids(marker)
    if token_id is None or token_id == tokenizer.unk_token_id and marker != tokenizer.unk_token:
        raise ValueError(f"response marker {marker!r} is not a token of {type(tokenizer).__name__}")
    return token_id


def _is_encoder(tokenizer) -> bool:
    return tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None


def _ids(tokenizer, text: str) -> list[int]:
    # verbose=False: a long prompt is expected here (it is cut below), not worth a warning.
    return tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]


def encode(tokenizer, spec: EncodingSpec, prompt: str, response: str) -> list[int]:
    """Token ids of one (prompt, response), truncated as the module docstring says."""
    prompt_ids = _ids(tokenizer, prompt + spec.response_prefix) if prompt else _ids(tokenizer, spec.response_prefix)
    response_ids = _ids(tokenizer, " " + response)
    if _is_encoder(tokenizer):
        head, middle, tail = [tokenizer.cls_token_id], [tokenizer.sep_token_id], [tokenizer.sep_token_id]
    else:
        if tokenizer.eos_token_id is None:
            raise ValueError(f"decoder tokenizer {type(tokenizer).__name__} has no EOS token to read the reward at")
        head, middle, tail = [], [], [tokenizer.eos_token_id]
        if spec.response_marker is not None:
            middle = [marker_id(tokenizer, spec.response_marker)]
    budget = spec.max_length - len(head) - len(middle) - len(tail)
    response_ids = response_ids[: min(spec.max_response_tokens, budget)]
    prompt_budget = budget - len(response_ids)
    prompt_ids = prompt_ids[-prompt_budget:] if prompt_budget > 0 else []
    return head + prompt_ids + middle + response_ids + tail


def encode_many(tokenizer, spec: EncodingSpec, prompts: list[str], responses: list[str]) -> list[list[int]]:
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    return [encode(tokenizer, spec, p, r) for p, r in zip(prompts, responses)]
