"""In-process transformers backend (the embedded default: SmolLM2-135M-Instruct on CPU).

Scoring a finite action set shares computation through the key/value cache at two levels: the part all prompts of
a batch have in common (the system message listing the actions) runs once per batch, each prompt's remainder once,
and only the few answer tokens of every candidate run per candidate. With six teams and a shared system message this
is several times cheaper than six full sequences per ticket, which makes per-request scoring affordable on a CPU. The result equals scoring each full
sequence separately (checked in the tests); tokenisation follows TRL's DPOTrainer (``tokenizer(text=prompt)``
and ``tokenizer(text=prompt + completion)``, the completion starting where the two diverge), so the
probabilities served are the ones DPO trains.

Loading a trained policy: a directory with ``adapter_config.json`` is a LoRA adapter; its base model path is read
from ``manifest.json`` (written by training) or the adapter config, and the adapter is merged for fast inference.

Not here: batching of concurrent requests (the API layer collects them and calls ``completion_logprobs`` once),
quantisation, and GPU placement beyond passing ``device``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from policies.backends.base import Messages, render_plain


class TransformersBackend:
    """A causal LM and its tokenizer, used in process."""

    def __init__(self, model, tokenizer, *, name: str = "local", batch_size: int = 16):
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if tokenizer.eos_token is None:
            raise ValueError("the tokenizer has no eos_token; an answer could not be terminated")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        device: str = "cpu",
        dtype: torch.dtype = torch.float32,
        batch_size: int = 16,
    ) -> TransformersBackend:
        """Load a plain checkpoint or a trained LoRA policy directory (merged on load)."""
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        if not model_dir.is_dir():
            raise FileNotFoundError(f"policy model directory not found: {model_dir}")
        if (model_dir / "adapter_config.json").exists():
            from peft import PeftModel

            base_dir = _adapter_base(model_dir)
            base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
            model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        return cls(model.to(device), tokenizer, name=model_dir.name, batch_size=batch_size)

    @property
    def end_of_turn(self) -> str:
        return self.tokenizer.eos_token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def render(self, messages: Messages) -> str:
        return render_with_tokenizer(self.tokenizer, messages)

    # ----------------------------------------------------------------------------------------------- scoring
    @torch.no_grad()
    def completion_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        if not completions:
            raise ValueError("need at least one completion to score")
        out = np.empty((len(prompts), len(completions)), dtype=np.float64)
        step = max(1, self.batch_size)
        for start in range(0, len(prompts), step):
            chunk = prompts[start : start + step]
            out[start : start + len(chunk)] = self._score_chunk(chunk, completions)
        return out

    def _split(self, prompt: str, completions: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """Shared prefix ids and per-completion continuation ids, tokenised as TRL's DPOTrainer does."""
        prompt_ids = self.tokenizer(text=prompt)["input_ids"]
        full = [self.tokenizer(text=prompt + c + self.end_of_turn)["input_ids"] for c in completions]
        shared = min(_common_prefix(prompt_ids, f) for f in full)
        if shared == 0:
            raise ValueError("prompt and completions share no tokens; the prompt must not be empty")
        return prompt_ids[:shared], [f[shared:] for f in full]

    def _score_chunk(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        n_comp = len(completions)
        splits = [self._split(p, completions) for p in prompts]
        prefixes = [s[0] for s in splits]
        # Level 1: the part every prompt of the chunk shares (the system message) runs once. It stops one token
        # short of the shortest prompt so that every prompt keeps a last token whose logits score the answer.
        common = min(min(_common_prefix(prefixes[0], p) for p in prefixes), min(len(p) for p in prefixes) - 1)
        cache, past_mask = None, self._empty_mask(1)
        if common > 0:
            ids, mask = self._pad([prefixes[0][:common]])
            _, cache, past_mask = self._extend(ids, mask, past_mask, cache)
            cache.batch_repeat_interleave(len(prompts))
            past_mask = past_mask.repeat_interleave(len(prompts), dim=0)
        else:
            past_mask = self._empty_mask(len(prompts))
        # Level 2: the rest of each prompt; its last real position predicts the first answer token.
        ids, mask = self._pad([p[common:] for p in prefixes])
        hidden, cache, past_mask = self._extend(ids, mask, past_mask, cache)
        last = mask.sum(dim=1) - 1
        first_logp = self._logp(hidden[torch.arange(len(prompts)), last])
        # Level 3: all candidate answers of a prompt packed into ONE row after that prompt's cache. Each answer
        # sees the prompt and its own earlier tokens only, and its positions restart where the prompt ends, so
        # the result equals scoring it alone - without copying the prompt's cache once per answer.
        ids, mask = self._pad([[t for c in conts for t in c] for _, conts in splits])
        groups = torch.full_like(ids, -1)
        offsets = torch.zeros_like(ids)
        for r, (_, conts) in enumerate(splits):
            at = 0
            for i, c in enumerate(conts):
                groups[r, at : at + len(c)] = i
                offsets[r, at : at + len(c)] = torch.arange(len(c))
                at += len(c)
        hidden, _, _ = self._extend(ids, mask, past_mask, cache, offsets=offsets, groups=groups)

        starts = (offsets == 0) & (groups >= 0)  # the first token of each answer: predicted by level 2
        total = torch.zeros((len(prompts), n_comp), dtype=torch.float32, device=self.device)
        first = first_logp.gather(1, torch.where(starts, ids, 0)) * starts
        total.scatter_add_(1, groups.clamp(min=0), first)
        if ids.shape[1] > 1:
            # the hidden state at a token predicts the next token of the same answer
            same = (groups[:, 1:] == groups[:, :-1]) & (groups[:, 1:] >= 0)
            nxt = self._logp(hidden[:, :-1]).gather(2, ids[:, 1:, None]).squeeze(2) * same
            total.scatter_add_(1, groups[:, 1:].clamp(min=0), nxt)
        return total.double().cpu().numpy()

    def _pad(self, rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long, device=self.device)
            mask[i, : len(r)] = 1
        return ids, mask

    def _empty_mask(self, rows: int) -> torch.Tensor:
        return torch.zeros((rows, 0), dtype=torch.long, device=self.device)

    def _extend(self, ids, mask, past_mask, cache, *, offsets=None, groups=None):
        """Run right-padded ``ids`` after the cached tokens; return hidden states, the cache and its slot mask.

        Positions continue from each row's own number of real cached tokens, and an explicit 4D mask lets token
        j see the real cached slots and its own row's tokens <= j. Building the mask here (rather than letting
        the library infer it from a 2D mask and the cache length) keeps padded slots in the middle of the cache
        out of attention. With ``groups`` (a group id per token, -1 for padding) a row holds several packed
        sequences: a token sees only earlier tokens of its own group, at position cache length + ``offsets``.
        """
        rows, width = ids.shape
        if offsets is None:
            offsets = torch.arange(width, device=ids.device)[None, :]
        position_ids = past_mask.sum(dim=1, keepdim=True) + offsets
        keys = torch.cat([past_mask, mask], dim=1).bool()
        allowed = keys[:, None, None, :].expand(rows, 1, width, keys.shape[1]).clone()
        causal = torch.ones(width, width, dtype=torch.bool, device=ids.device).tril()
        if groups is not None:
            causal = causal & (groups[:, :, None] == groups[:, None, :])[:, None]
        allowed[:, :, :, past_mask.shape[1] :] &= causal
        dtype = next(self.model.parameters()).dtype
        mask4d = torch.zeros(allowed.shape, dtype=dtype, device=ids.device).masked_fill(~allowed, torch.finfo(dtype).min)
        out = self._body()(
            input_ids=ids, attention_mask=mask4d, position_ids=position_ids, past_key_values=cache, use_cache=True
        )
        return out.last_hidden_state, out.past_key_values, torch.cat([past_mask, mask], dim=1)

    def _body(self):
        return self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.model

    def _logp(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.model.get_output_embeddings()(hidden).float(), dim=-1)

    @torch.no_grad()
    def sequence_logprobs(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        """``log p(completion_i + end_of_turn | prompt_i)`` for aligned pairs, one full forward per sequence.

        The straightforward reference for :meth:`completion_logprobs`, and what KL estimates use (each sampled
        completion belongs to one prompt).
        """
        if len(prompts) != len(completions):
            raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
        out = np.empty(len(prompts), dtype=np.float64)
        for i, (prompt, completion) in enumerate(zip(prompts, completions)):
            prefix, (cont,) = self._split(prompt, [completion])
            ids = torch.tensor([prefix + cont], device=self.device)
            logits = self.model(input_ids=ids).logits[0, len(prefix) - 1 : -1].float()
            out[i] = float(torch.log_softmax(logits, -1).gather(1, ids[0, len(prefix) :, None]).sum())
        return out

    # -------------------------------------------------------------------------------------------- generation
    @torch.no_grad()
    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int | None = None,
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
            if sampling:
                kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
            out = self.model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1] :]
            texts.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
        return texts


def render_with_tokenizer(tokenizer, messages: Messages) -> str:
    """The prompt a policy built on ``tokenizer`` sees (its chat template, or a plain format without one).

    Training jobs use this to render pairs without loading model weights.
    """
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return render_plain(messages)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


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
