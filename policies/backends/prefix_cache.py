"""Key/value states of recurring prompt prefixes, kept across calls in a small LRU.

A policy's prompts share a prefix from call to call (the system message of a decision type, which lists
its actions). Its key/value states are stored once two calls' prompts share at least
``MIN_CACHED_PREFIX`` tokens, and reused, so a request scored alone does not recompute the system
message. An entry is exact for any prompt whose token ids start with it, because a causal model's
states of a prefix do not depend on what follows. An entry is a few MB for SmolLM2-135M.

This module stores and finds states; it does not compute them (``policies.backends.packed_scoring``
does) and knows nothing about models beyond the tensors' shape.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

import torch

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
            shared = max((common_prefix(ids, r) for r in self._recent), default=0)
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


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
