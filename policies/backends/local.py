"""In-process transformers backend (the embedded default: SmolLM2-135M-Instruct on CPU).

``TransformersBackend`` loads a causal LM and its tokenizer (a plain checkpoint, or a trained LoRA
policy directory), renders prompts with the tokenizer's chat template, fits text to a token budget,
scores answers (``policies.backends.packed_scoring``, with the prefix cache of
``policies.backends.prefix_cache``) and generates. Precision follows ``policies.backends.cpu_features``.

Loading a trained policy: a directory with ``adapter_config.json`` is a LoRA adapter; its base model path is read
from ``manifest.json`` (written by training) or the adapter config, and the adapter is merged for fast inference.

Not here: batching of concurrent requests (the API layer collects them and calls ``completion_logprobs`` once),
quantisation, and GPU placement beyond passing ``device``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from policies.backends.base import CHARS_PER_TOKEN_CAP, Messages, render_plain
from policies.backends.cpu_features import has_amx, resolve_dtype
from policies.backends.packed_scoring import PackedScoring
from policies.backends.prefix_cache import PrefixCache

__all__ = ["TransformersBackend", "fit_with_tokenizer", "render_with_tokenizer"]


class TransformersBackend(PackedScoring):
    """A causal LM and its tokenizer, used in process."""

    def __init__(self, model, tokenizer, *, name: str = "local", batch_size: int = 16, prefix_cache_size: int = 8):
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has no eos_token; an answer could not be terminated")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.prefix_cache = PrefixCache(prefix_cache_size)
        # Where a forward pass's fixed cost is small next to its tokens' (a CPU, unless it has AMX tiles for
        # bfloat16), rows of similar width run as separate passes instead of one padded one; see packed_scoring.PASS_TOKENS.
        self._grouped = self.device.type == "cpu" and not (model.dtype == torch.bfloat16 and has_amx())

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype | str = torch.float32,
        batch_size: int = 16,
        prefix_cache_size: int = 8,
    ) -> TransformersBackend:
        """Load a plain checkpoint or a trained LoRA policy directory (merged on load)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        dtype = resolve_dtype(dtype, device)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"policy model directory not found: {model_dir}")
        if (model_dir / "adapter_config.json").exists():
            from peft import PeftModel

            base_dir = _adapter_base(model_dir)
            # Merged in float32, then cast: a small LoRA update added in bfloat16 would be partly rounded away.
            base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
            model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return cls(model.to(device=device, dtype=dtype), tokenizer, name=model_dir.name, batch_size=batch_size, prefix_cache_size=prefix_cache_size)

    @property
    def end_of_turn(self) -> str:
        return self.tokenizer.eos_token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def render(self, messages: Messages) -> str:
        return render_with_tokenizer(self.tokenizer, messages)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text=text, add_special_tokens=False)["input_ids"])

    def fit_tokens(self, text: str, max_tokens: int) -> str:
        return fit_with_tokenizer(self.tokenizer, text, max_tokens)

    @torch.no_grad()
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
        if seed is not None:
            torch.manual_seed(seed)
        texts: list[str] = []
        tok = self.tokenizer
        for start in range(0, len(prompts), max(1, self.batch_size)):
            chunk = list(prompts[start : start + self.batch_size])
            enc = tok(text=chunk, return_tensors="pt", padding=True, padding_side="left").to(self.device)
            sampling = temperature > 0
            kwargs = {"do_sample": sampling, "max_new_tokens": max_new_tokens, "pad_token_id": tok.pad_token_id}
            if max_time is not None:
                kwargs["max_time"] = max_time  # transformers' MaxTimeCriteria: stop, keep the text so far
            if sampling:
                kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
            out = self.model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1] :]
            texts.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
        return texts


def fit_with_tokenizer(tokenizer, text: str, max_tokens: int) -> str:
    """The longest head of ``text`` that is at most ``max_tokens`` tokens (the original characters, not a decode)."""
    if len(text.encode("utf-8", "replace")) <= max_tokens:  # a token covers at least one byte
        return text
    head = text[: max_tokens * CHARS_PER_TOKEN_CAP]  # bounds the tokeniser's work, whatever the value's size
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text=head, add_special_tokens=False, return_offsets_mapping=True)
        if len(enc["input_ids"]) <= max_tokens:
            return head
        # Up to where token n+1 starts: a character split over several tokens (an emoji) is kept whole or not at all.
        return head[: enc["offset_mapping"][max_tokens][0]]
    ids = tokenizer(text=head, add_special_tokens=False)["input_ids"]
    return head if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def render_with_tokenizer(tokenizer, messages: Messages) -> str:
    """The prompt a policy built on ``tokenizer`` sees (its chat template, or a plain format without one).

    Training jobs use this to render pairs without loading model weights.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return render_plain(messages)


def _adapter_base(adapter_dir: Path) -> str:
    manifest = adapter_dir / "manifest.json"
    if manifest.exists():
        base = json.loads(manifest.read_text()).get("lineage", {}).get("base_model")
        if base:
            return base
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ValueError(f"{adapter_dir}: adapter without a base model path (no manifest.json lineage either)")
    return base
