"""A verdict cache, so that an identical (judge model, rubric version, pair) is never billed twice.

`JudgeCache` is the protocol: `get(key)` / `put(key, payload)` with JSON-safe dict payloads. The
app implements it on its `JudgeCacheEntry` table; `InMemoryJudgeCache` serves tests and one-off
runs. `CachedJudge` consults the cache before calling the judge it wraps and stores successful
verdicts only (a failure is never cached: the next run should try again).

The key covers the provider, the model, the rubric version, the temperature and the exact text
shown to the judge in its order; it does not cover the comparison id, so the same pair stored
twice is still only paid for once.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from labeling.verdicts import Judge, JudgeRequest, JudgeResult, Verdict

log = logging.getLogger(__name__)


@runtime_checkable
class JudgeCache(Protocol):
    """Storage for verdicts keyed by `cache_key(...)`. Payloads are JSON-safe dicts."""

    def get(self, key: str) -> Mapping[str, Any] | None: ...

    def put(self, key: str, payload: Mapping[str, Any]) -> None: ...


class InMemoryJudgeCache:
    """A dict-backed cache that counts its hits (for tests and single runs)."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Mapping[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
        else:
            self.hits += 1
        return entry

    def put(self, key: str, payload: Mapping[str, Any]) -> None:
        self._entries[key] = dict(payload)

    def __len__(self) -> int:
        return len(self._entries)


def cache_key(
    *,
    provider: str,
    model: str,
    rubric_version: str | None,
    request: JudgeRequest,
    temperature: float | None = None,
) -> str:
    """A stable hex digest of everything that determines a verdict."""
    material = json.dumps(
        [provider, model, rubric_version or "", temperature, request.prompt, request.first, request.second],
        ensure_ascii=False,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class CachedJudge:
    """Answers from the cache when it can; otherwise asks the wrapped judge and remembers success.

    A cached verdict comes back with `cached=True` and zero cost and tokens: nothing was spent on
    it this time.
    """

    def __init__(self, inner: Judge, cache: JudgeCache, *, temperature: float | None = None) -> None:
        self.inner = inner
        self.cache = cache
        self.temperature = temperature
        self.name, self.provider, self.model = inner.name, inner.provider, inner.model
        self.rubric_version = inner.rubric_version

    def key(self, request: JudgeRequest) -> str:
        return cache_key(
            provider=self.provider,
            model=self.model,
            rubric_version=self.rubric_version,
            request=request,
            temperature=self.temperature,
        )

    async def judge(self, request: JudgeRequest) -> JudgeResult:
        key = self.key(request)
        payload = self.cache.get(key)
        if payload is not None:
            try:
                cached = Verdict.from_dict(dict(payload))
            except (TypeError, ValueError) as exc:
                # A corrupt entry must not cost a label: ignore it and judge again.
                log.warning("ignoring unreadable cache entry %s: %s", key[:12], exc)
            else:
                return cached.with_(
                    cached=True, cost_usd=0.0, input_tokens=0, output_tokens=0, latency_s=0.0, attempts=0
                )
        result = await self.inner.judge(request)
        if isinstance(result, Verdict):
            self.cache.put(key, result.to_dict())
        return result
