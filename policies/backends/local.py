"""In-process transformers backend (the embedded default: SmolLM2-135M-Instruct on CPU).

Scoring a finite action set shares computation through the key/value cache. The part all prompts of a batch have in
common (the system message listing the actions) runs once; then ONE forward pass per batch runs, in each row, the
rest of a prompt followed by all candidate answers packed behind it. An attention mask lets each answer see the
prompt and its own earlier tokens only, and its positions restart where the prompt ends, so every answer scores
exactly as if it were the only continuation (checked in the tests against one full sequence per answer). An answer's
end-of-turn token predicts nothing and is not run. Tokenisation follows TRL's DPOTrainer (``tokenizer(text=prompt)``
and ``tokenizer(text=prompt + completion)``, the completion starting where the two diverge), so the probabilities
served are the ones DPO trains.

Across calls, the key/value states of a prompt prefix that recurs from call to call (the system message of a
decision type) are kept in a small LRU (``prefix_cache_size`` entries, a few MB each for SmolLM2-135M) and reused,
so a request scored alone does not recompute the system message either. A prefix is stored once two calls' prompts
share at least ``MIN_CACHED_PREFIX`` tokens; it is exact for any prompt whose token ids start with it, because a
causal model's states of a prefix do not depend on what follows.

Why one pass: on a CPU, a forward pass of SmolLM2-135M has a fixed cost of about 45 ms (streaming 0.4 GB of float32
weights and thousands of small operations) on top of ~1.7 ms per token (2 cores, AMD EPYC, float32). The earlier
design ran a request alone in three passes (the prompt's rest, its last token, then the answers) and a batch in
two per length group. In two in-process comparisons, one pass took a ticket alone from 322-338 to 148-180 ms and
a batch of 16 from 118-143 to 87-111 ms per ticket. It also leaves batching less to save: see ``bench/api_latency.py``.

Rows of very different widths (a prompt's rest plus its answers: 30 to 80 tokens for tickets) are split into
groups that each run as a pass of their own (``length_groups``) where a pass's fixed cost is small next to its
tokens': on a CPU, unless bfloat16 runs on AMX tiles (there a pass costs ~200 tokens' worth and grouping was slower).

Precision: ``dtype="auto"`` loads bfloat16 where matrix products run it natively (a CPU with AMX tiles or AVX-512
bfloat16 instructions, a CUDA GPU with bfloat16; ``native_bfloat16``), float32 elsewhere, where bfloat16 is
emulated and slower. On this project's 2-core AMX machine (session 5), bfloat16 took a ticket alone from 201 to
144 ms and a batch of 16 from 76 to 41 ms per ticket (on a 2-core AMD EPYC with AVX512_BF16, with one-pass scoring:
170 to 102 ms alone, 104 to 57 ms per ticket in a batch of 16); the log-likelihoods moved by 0.13 nats on average (0.45 at most), the served probabilities by at
most 0.10, and the most likely team stayed the same on 16 of 16 tickets (``bench/api_latency.py``). A trained
policy's margins are smaller: the demo's DPO policy routed 46.7% of 120 held-out tickets right in float32 and
42.5% in bfloat16. So the app serves float32 unless ``ARBITER_POLICY_DTYPE`` says otherwise. A policy samples from
the probabilities it computed and logs them, so off-policy evaluation stays exact in either precision.

Loading a trained policy: a directory with ``adapter_config.json`` is a LoRA adapter; its base model path is read
from ``manifest.json`` (written by training) or the adapter config, and the adapter is merged for fast inference.

Not here: batching of concurrent requests (the API layer collects them and calls ``completion_logprobs`` once),
quantisation, and GPU placement beyond passing ``device``.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from policies.backends.base import CHARS_PER_TOKEN_CAP, Messages, render_plain

# Rows of a batch run as one padded pass per group of rows of similar width; a group's fixed cost (one more forward
# pass) counts as this many padded tokens when choosing the groups. Measured on 2 CPU cores (AMD EPYC, SmolLM2-135M),
# per ticket in batches of 8 / 16 / 32 over 3 runs: float32 one group 122 / 114 / 117 ms, groups at 48 tokens
# 120 / 115 / 106 ms, at 0 (every width its own pass) 175 / 162 / 158 ms; bfloat16 (AVX-512, no AMX) one group
# 74 / 75 / 77 ms, at 48 tokens 72 / 67 / 63 ms.
PASS_TOKENS = 48
MIN_CACHED_PREFIX = 16  # tokens; shorter recurring prefixes (a chat template's header) are not worth an entry

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), batch 1


@dataclass
class PrefixCacheStats:
    hits: int = 0  # chunks that started from a stored prefix
    stored: int = 0  # prefixes computed and stored
    evicted: int = 0


class PrefixCache:
    """Key/value states of recurring prompt prefixes, least recently used first out.

    ``longest(ids)`` finds the longest stored prefix of ``ids``; ``recurring(ids)`` says how many leading tokens
    ``ids`` shares with one of the last few prompts it was asked about (what is worth storing). Thread-safe.
    """

    def __init__(self, capacity: int, recent: int = 8):
        if capacity < 0:
            raise ValueError("prefix cache capacity must be >= 0")
        self.capacity = capacity
        self.stats = PrefixCacheStats()
        self._entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self._recent: deque[tuple[int, ...]] = deque(maxlen=recent)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def longest(self, ids: Sequence[int]) -> tuple[int, KV | None]:
        with self._lock:
            best: tuple[int, ...] | None = None
            for key in self._entries:
                if len(key) <= len(ids) and (best is None or len(key) > len(best)) and tuple(ids[: len(key)]) == key:
                    best = key
            if best is None:
                return 0, None
            self._entries.move_to_end(best)
            self.stats.hits += 1
            return len(best), self._entries[best]

    def recurring(self, ids: Sequence[int]) -> int:
        """Leading tokens ``ids`` shares with the most similar recent prompt; remembers ``ids``."""
        with self._lock:
            shared = max((_common_prefix(ids, r) for r in self._recent), default=0)
            self._recent.append(tuple(ids))
            return shared

    def store(self, ids: Sequence[int], kv: KV) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._entries[tuple(ids)] = kv
            self._entries.move_to_end(tuple(ids))
            self.stats.stored += 1
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
                self.stats.evicted += 1


class TransformersBackend:
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
        # bfloat16), rows of similar width run as separate passes instead of one padded one; see PASS_TOKENS.
        self._grouped = self.device.type == "cpu" and not (model.dtype == torch.bfloat16 and _amx())

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
        splits = [self._split(p, completions) for p in prompts]
        prefixes = [s[0] for s in splits]
        # Level 1: states of the part every prompt of the chunk shares (the system message), computed once. It stops
        # one token short of the shortest prompt so that every row keeps a last prompt token to predict the answers.
        limit = min(min(_common_prefix(prefixes[0], p) for p in prefixes), min(len(p) for p in prefixes) - 1)
        common, shared = self._shared_prefix(prefixes[0], limit, rows=len(prompts))
        # Level 2: ONE forward pass per group of rows, each row a prompt's remainder followed by its candidate answers.
        out = np.empty((len(prompts), len(completions)), dtype=np.float64)
        widths = [len(p) - common + sum(len(c) - 1 for c in conts) for p, conts in splits]
        for group in length_groups(widths, PASS_TOKENS) if self._grouped else [list(range(len(prompts)))]:
            out[group] = self._score_rows([splits[i] for i in group], shared, common)
        return out

    def _score_rows(self, splits, shared: KV | None, common: int) -> np.ndarray:
        """Log-likelihoods of every answer after every prompt, for prompts that all start with the ``common`` tokens
        whose states are ``shared``, in one forward pass.

        Each row packs a prompt's remainder and then all candidate answers. An answer sees the prompt and its own
        earlier tokens only, at positions that restart where the prompt ends, so it scores exactly as if alone. An
        answer's last token (the end of turn) predicts nothing and is not run; its first token is predicted by the
        prompt's last token.
        """
        tokens, targets, groups, offsets = [], [], [], []
        for prefix, conts in splits:
            rest = prefix[common:]
            tokens.append(rest + [t for c in conts for t in c[:-1]])
            targets.append([-1] * len(rest) + [t for c in conts for t in c[1:]])  # the token each answer token predicts
            groups.append([0] * len(rest) + [i + 1 for i, c in enumerate(conts) for _ in c[:-1]])
            offsets.append(list(range(len(rest))) + [len(rest) + k for c in conts for k in range(len(c) - 1)])
        ids, mask = self._pad(tokens)
        targets, groups, offsets = (self._pad(x, fill=-1)[0] for x in (targets, groups, offsets))
        cache, past_mask = self._resume(shared, len(splits))
        hidden, _, _ = self._extend(ids, mask, past_mask, cache, offsets=offsets, groups=groups)
        # A prompt's last state predicts the first token of every answer; the answer tokens' states predict the rest.
        # One pass over the output embedding (the largest matrix of a small model) for all the states needed.
        rows = torch.arange(len(splits), device=self.device)
        last = torch.tensor([len(prefix) - common - 1 for prefix, _ in splits], device=self.device)
        later = targets >= 0
        logp = self._logp(torch.cat([hidden[rows, last], hidden[later]]))
        first = torch.tensor([[c[0] for c in conts] for _, conts in splits], device=self.device)
        total = logp[: len(splits)].gather(1, first)
        following = logp[len(splits) :].gather(1, targets[later][:, None]).squeeze(1)
        total.index_put_((rows[:, None].expand_as(later)[later], groups[later] - 1), following, accumulate=True)
        return total.double().cpu().numpy()

    def _shared_prefix(self, prompt: Sequence[int], limit: int, rows: int) -> tuple[int, KV | None]:
        """``(n, states)``: key/value states (batch 1) of ``prompt[:n]``, the part of ``prompt[:limit]`` that ``rows``
        rows share, or ``(0, None)``.

        The longest stored prefix comes from the cache; a miss stores a prefix this prompt shares with a recent one
        (the system message). Beyond what is stored, computing the shared part once costs a forward pass of its own,
        which pays only when enough rows would otherwise each run those tokens (never for a request alone)."""
        if limit <= 0:
            return 0, None
        cached, kv = 0, None
        if self.prefix_cache.capacity > 0:
            cached, kv = self.prefix_cache.longest(prompt[:limit])
            # Only a miss looks for a recurring prefix to store (and is remembered for the next miss).
            recurring = min(self.prefix_cache.recurring(prompt), limit) if kv is None else 0
            if recurring >= MIN_CACHED_PREFIX:
                kv, cached = self._states(prompt[:recurring]), recurring
                self.prefix_cache.store(prompt[:recurring], kv)
        if (rows - 1) * (limit - cached) > PASS_TOKENS:
            kv, cached = self._states(prompt[cached:limit], kv), limit
        return cached, kv

    def _states(self, ids: Sequence[int], after: KV | None = None) -> KV:
        """Key/value states of ``ids`` (batch 1), continuing ``after`` when given."""
        cache, past_mask = self._resume(after, 1)
        tokens, mask = self._pad([ids])
        _, cache, _ = self._extend(tokens, mask, past_mask, cache)
        return [(layer.keys, layer.values) for layer in cache.layers]

    def _resume(self, kv: KV | None, rows: int):
        """(cache, slot mask) to run ``rows`` rows after the batch-1 states ``kv`` (none: an empty start). The cache
        is a fresh object per call: extending it concatenates into new tensors, so ``kv`` itself stays intact."""
        from transformers import DynamicCache

        if kv is None:
            return None, self._empty_mask(rows)
        cache = DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in kv],
                             config=self.model.config)
        return cache, torch.ones((rows, kv[0][0].shape[-2]), dtype=torch.long, device=self.device)

    def _pad(self, rows: Sequence[Sequence[int]], fill: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ``rows`` (with ``fill``, default the pad token) and the mask of their real entries."""
        width = max(len(r) for r in rows)
        fill = self.tokenizer.pad_token_id if fill is None else fill
        ids = torch.full((len(rows), width), fill, dtype=torch.long, device=self.device)
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
        out of attention. With ``groups`` (a group id per token, -1 for padding) a row holds a prompt (group 0) and
        several packed answers (groups 1, 2, ...): a token sees the earlier tokens of group 0 and of its own group,
        at position cache length + ``offsets``.
        """
        rows, width = ids.shape
        if offsets is None:
            offsets = torch.arange(width, device=ids.device)[None, :]
        position_ids = past_mask.sum(dim=1, keepdim=True) + offsets
        keys = torch.cat([past_mask, mask], dim=1).bool()
        allowed = keys[:, None, None, :].expand(rows, 1, width, keys.shape[1]).clone()
        causal = torch.ones(width, width, dtype=torch.bool, device=ids.device).tril()
        if groups is not None:
            causal = causal & ((groups[:, None, :] == 0) | (groups[:, :, None] == groups[:, None, :]))[:, None]
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
        return torch.log_softmax(self.model.get_output_embeddings()(hidden), dim=-1, dtype=torch.float32)

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


def native_bfloat16(device: str | torch.device = "cpu") -> bool:
    """Whether matrix products in bfloat16 run natively (and fast) on ``device``: a CUDA GPU that supports it, or a
    CPU with AMX tiles or AVX-512 bfloat16 dot products. Elsewhere bfloat16 is emulated and slower than float32.
    Measured with SmolLM2-135M on 2 cores: AMX (Intel) 201 -> 144 ms per ticket alone; AVX512_BF16 (AMD EPYC)
    170 -> 102 ms alone, 104 -> 57 ms per ticket in batches of 16."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _amx() or _cpu_has("_is_avx512_bf16_supported")
    return False


def _amx() -> bool:
    return _cpu_has("_is_amx_tile_supported")


def _cpu_has(probe: str) -> bool:
    check = getattr(torch.cpu, probe, None)
    return bool(check and check())


def resolve_dtype(dtype: torch.dtype | str, device: str | torch.device = "cpu") -> torch.dtype:
    """``"auto"``: bfloat16 where it is native (see :func:`native_bfloat16`), else float32; names or dtypes pass."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if native_bfloat16(device) else torch.float32
    if dtype not in ("float32", "bfloat16"):
        raise ValueError(f"unknown dtype {dtype!r}; use auto, float32 or bfloat16")
    return getattr(torch, dtype)


def length_groups(lengths: Sequence[int], pass_cost: int) -> list[list[int]]:
    """Split items into groups (as index lists) that minimise padded tokens plus ``pass_cost`` per group.

    Each group is padded to its longest item; sorted by length, the best split is a dynamic programme over where
    the groups end. Example: ``length_groups([10, 60, 12, 58], 20)`` is ``[[0, 2], [3, 1]]``.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    best = [0.0] + [float("inf")] * len(order)
    cut = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        for start in range(end):
            cost = best[start] + (end - start) * lengths[order[end - 1]] + pass_cost
            if cost < best[end]:
                best[end], cut[end] = cost, start
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[cut[end] : end])
        end = cut[end]
    return groups[::-1]


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
