"""Scoring a finite set of answers after many prompts in one forward pass (the transformers backend's scorer).

The part all prompts of a batch have in common (the system message listing the actions) runs once, or
comes from the prefix cache (``policies.backends.prefix_cache``); then ONE forward pass per group of
rows runs, in each row, the rest of a prompt followed by all candidate answers packed behind it. An
attention mask lets each answer see the prompt and its own earlier tokens only, and its positions
restart where the prompt ends, so every answer scores exactly as if it were the only continuation
(checked in the tests against one full sequence per answer, ``sequence_logprobs``). An answer's
end-of-turn token predicts nothing and is not run. Tokenisation follows TRL's DPOTrainer
(``tokenizer(text=prompt)`` and ``tokenizer(text=prompt + completion)``, the completion starting where
the two diverge), so the probabilities served are the ones DPO trains.

One pass, because on a CPU a forward pass has a fixed cost large next to a token's. Rows of very
different widths (a prompt's rest plus its answers: 30 to 80 tokens for tickets) are split into groups
that each run as a pass of their own (``length_groups``) where a pass's fixed cost is small next to its
tokens': on a CPU, unless bfloat16 runs on AMX tiles. The measurements behind both choices are in
bench/NOTES.md.

``PackedScoring`` is the scoring half of ``TransformersBackend``: it needs ``model``, ``tokenizer``,
``batch_size``, ``prefix_cache``, ``device``, ``end_of_turn`` and ``_grouped`` from it. Not here:
loading, generation, batching of concurrent requests (the API layer collects them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from policies.backends.prefix_cache import KV, MIN_CACHED_PREFIX, common_prefix

# Rows of a batch run as one padded pass per group of rows of similar width; a group's fixed cost (one more forward
# pass) counts as this many padded tokens when choosing the groups (measured: bench/NOTES.md).
PASS_TOKENS = 48


class PackedScoring:
    """``completion_logprobs`` and ``sequence_logprobs`` over ``self.model`` (mixed into ``TransformersBackend``)."""

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
        shared = min(common_prefix(prompt_ids, f) for f in full)
        if shared == 0:
            raise ValueError("prompt and completions share no tokens; the prompt must not be empty")
        return prompt_ids[:shared], [f[shared:] for f in full]

    def _score_chunk(self, prompts: Sequence[str], completions: Sequence[str]) -> np.ndarray:
        splits = [self._split(p, completions) for p in prompts]
        prefixes = [s[0] for s in splits]
        # Level 1: states of the part every prompt of the chunk shares (the system message), computed once. It stops
        # one token short of the shortest prompt so that every row keeps a last prompt token to predict the answers.
        limit = min(min(common_prefix(prefixes[0], p) for p in prefixes), min(len(p) for p in prefixes) - 1)
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
