"""Fast batched scoring with a trained reward model.

``RewardScorer`` is the one object the rest of Arbiter uses to ask "how good is this response":
the API, the local-model judge, the online-RL reward function and active selection. It
tokenizes exactly as training did (``reward_models.encoding``), sorts inputs by length so each
batch pads little, runs under ``torch.inference_mode`` and returns rewards in the input order.

    >>> scorer = RewardScorer.load("var/reward_models/rm-1")          # doctest: +SKIP
    >>> scorer.score(["Hi?"], ["Hello! How can I help?"])              # doctest: +SKIP
    array([0.83], dtype=float32)
    >>> scorer.preference_probability(["Hi?"], ["Hello!"], ["Go away."])  # doctest: +SKIP
    array([0.91])

``EnsembleScorer`` combines several scorers (e.g. the same recipe trained with different seeds)
and reports their spread as an uncertainty. This module does not train and does not know about
the registry; it loads from a directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from scipy.special import expit

from . import mean_pooled  # noqa: F401  (registers the mean-pooled heads with the Auto classes)
from .artifacts import MODEL_SUBDIR, is_artifact, read_manifest
from .encoding import EncodingSpec, encode_many, prepare_tokenizer
from .pairs import Message, PreferencePair

__all__ = ["EnsembleScorer", "RewardScorer", "length_batches", "load_scorer", "pad_batch"]


def _default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def length_batches(lengths: Sequence[int], batch_size: int, max_batch_tokens: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory peaks early).

    A batch holds at most ``batch_size`` sequences and ``max_batch_tokens`` padded tokens (a single
    longer sequence still gets a batch of its own).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        # Sorted descending, the first index of a batch is its longest: padded size = n x that.
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= batch_size or (len(current) + 1) * width > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_batch(ids: Sequence[Sequence[int]], batch: Sequence[int], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of the sequences ``ids[i] for i in batch``, right-padded with ``pad_id``."""
    width = max(len(ids[i]) for i in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, i in enumerate(batch):
        input_ids[row, : len(ids[i])] = torch.as_tensor(ids[i], dtype=torch.long)
        mask[row, : len(ids[i])] = 1
    return input_ids, mask


class RewardScorer:
    """Scores (prompt, response) pairs with one sequence-classification reward model.

    Args:
        model: a HF model with ``num_labels == 1``.
        tokenizer: its tokenizer.
        encoding: the text layout/truncation the model was trained with.
        temperature: calibration temperature for ``preference_probability``.
        batch_size: at most this many sequences per forward pass.
        max_batch_tokens: at most this many (padded) tokens per forward pass, so a batch of long
            inputs does not take more memory than a batch of short ones.
    """

    def __init__(
        self,
        model,
        tokenizer,
        encoding: EncodingSpec | None = None,
        temperature: float = 1.0,
        batch_size: int = 32,
        max_batch_tokens: int = 16384,
        device: str | torch.device | None = None,
        name: str = "",
    ):
        if getattr(model.config, "num_labels", None) != 1:
            raise ValueError(f"a reward model outputs one number; this model has num_labels={model.config.num_labels}")
        if batch_size < 1 or max_batch_tokens < 1:
            raise ValueError("batch_size and max_batch_tokens must be positive")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.device = torch.device(device) if device is not None else _default_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = prepare_tokenizer(tokenizer)
        # Decoder heads read the reward at the last token that is not padding: the model and the
        # tokenizer must agree on what padding is (training sets the same; see encoding.py).
        self.model.config.get_text_config().pad_token_id = self.tokenizer.pad_token_id
        self.encoding = encoding or EncodingSpec()
        self.temperature = float(temperature)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.name = name

    @classmethod
    def load(
        cls, path: str | Path, device: str | torch.device | None = None, batch_size: int = 32, max_batch_tokens: int = 16384
    ) -> RewardScorer:
        """Load an artifact directory (manifest + model/) or a plain HF model directory."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        path = Path(path)
        if is_artifact(path):
            manifest = read_manifest(path)
            model_dir, encoding, temperature, name = (
                path / MODEL_SUBDIR,
                EncodingSpec.from_dict(manifest.encoding),
                manifest.temperature,
                manifest.name,
            )
        elif (path / "config.json").exists():
            model_dir, encoding, temperature, name = path, EncodingSpec(), 1.0, path.name
        else:
            raise FileNotFoundError(f"{path} is neither a reward model artifact (manifest.json + model/) nor a model directory")
        device = torch.device(device) if device is not None else _default_device()
        # bf16 halves memory traffic on a GPU; on a CPU float32 is faster and exact.
        dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return cls(model, tokenizer, encoding, temperature, batch_size, max_batch_tokens, device, name)

    @torch.inference_mode()
    def score_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Rewards for already-encoded sequences, in their order."""
        out = np.empty(len(ids), dtype=np.float32)
        for batch in length_batches([len(x) for x in ids], self.batch_size, self.max_batch_tokens):
            input_ids, mask = pad_batch(ids, batch, self.tokenizer.pad_token_id)
            logits = self.model(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device)).logits
            out[batch] = logits[:, 0].float().cpu().numpy()
        return out

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """One reward per (prompt, response); higher is better. Shape ``(len(prompts),)``."""
        if isinstance(prompts, str) or isinstance(responses, str):
            raise TypeError("score() takes lists of prompts and responses, not single strings")
        if not prompts:
            return np.empty(0, dtype=np.float32)
        return self.score_ids(encode_many(self.tokenizer, self.encoding, list(prompts), list(responses)))

    def score_pairs(
        self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rewards of both responses of each pair, scored together (one batching pass)."""
        if not len(prompts) == len(responses_a) == len(responses_b):
            raise ValueError("prompts, responses_a and responses_b must have the same length")
        n = len(prompts)
        rewards = self.score(list(prompts) * 2, list(responses_a) + list(responses_b))
        return rewards[:n], rewards[n:]

    def preference_probability(
        self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> np.ndarray:
        """Calibrated P(a preferred to b) = sigmoid((r_a - r_b) / temperature)."""
        ra, rb = self.score_pairs(prompts, responses_a, responses_b)
        return expit((ra.astype(np.float64) - rb) / self.temperature)

    def reward_function(self):
        """This scorer as a TRL online-RL reward function (GRPO/RLOO ``reward_funcs``).

        TRL calls ``f(prompts=..., completions=..., **columns)`` with plain strings or, for
        conversational data, message lists; both are accepted. Returns a list of floats.
        """
        return _reward_function(self)

    def score_with_uncertainty(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """A single model has no spread to report: rewards and zeros. Use EnsembleScorer for one."""
        rewards = self.score(prompts, responses)
        return rewards, np.zeros_like(rewards)


class EnsembleScorer:
    """Several reward models scored together; their disagreement is the uncertainty.

    Rewards of independently trained models live on different scales, so each member's rewards
    are standardised (by its own calibration temperature) before averaging.
    """

    def __init__(self, members: Sequence[RewardScorer]):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.temperature = 1.0
        self.name = "+".join(m.name for m in self.members)

    @property
    def temperatures(self) -> np.ndarray:
        """Each member's calibration temperature, as a column (divides ``member_rewards`` row by row)."""
        return np.array([[m.temperature] for m in self.members])

    def member_rewards(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """Each member's own rewards, one row per member."""
        return np.stack([m.score(prompts, responses) for m in self.members])

    def score_with_uncertainty(self, prompts: Sequence[str], responses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over members of temperature-scaled rewards."""
        scaled = self.member_rewards(prompts, responses) / self.temperatures
        return scaled.mean(axis=0), scaled.std(axis=0)

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        return self.score_with_uncertainty(prompts, responses)[0]

    def score_pairs(self, prompts, responses_a, responses_b) -> tuple[np.ndarray, np.ndarray]:
        n = len(prompts)
        rewards = self.score(list(prompts) * 2, list(responses_a) + list(responses_b))
        return rewards[:n], rewards[n:]

    def preference_probability(self, prompts, responses_a, responses_b) -> np.ndarray:
        ra, rb = self.score_pairs(prompts, responses_a, responses_b)
        return expit(ra.astype(np.float64) - rb)

    def reward_function(self):
        return _reward_function(self)


def _as_prompt_text(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    messages = tuple(Message(m["role"], m["content"]) for m in prompt)
    return PreferencePair(messages, "", "").prompt_text()  # the same rendering training used


def _as_response_text(completion) -> str:
    if isinstance(completion, str):
        return completion
    return "".join(m["content"] for m in completion if m.get("role", "assistant") == "assistant")


def _reward_function(scorer):
    def reward_model(prompts, completions, **_columns) -> list[float]:
        texts = [_as_prompt_text(p) for p in prompts]
        return scorer.score(texts, [_as_response_text(c) for c in completions]).astype(float).tolist()

    reward_model.__name__ = f"reward_model_{scorer.name or 'rm'}".replace("-", "_")  # TRL logs per function name
    return reward_model


def load_scorer(path: str | Path | Sequence[str | Path], **kwargs) -> RewardScorer | EnsembleScorer:
    """``RewardScorer.load`` for one path; an ``EnsembleScorer`` for a list of paths."""
    if isinstance(path, (str, Path)):
        return RewardScorer.load(path, **kwargs)
    return EnsembleScorer([RewardScorer.load(p, **kwargs) for p in path])
