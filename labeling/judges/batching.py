"""Micro-batching for local models: concurrent single requests become one batched model call.

The labeling runner judges many pairs concurrently; a local model answers a batch of them far
faster than the same requests one by one. `MicroBatcher` collects the requests that arrive while
the model is busy and runs them together in a worker thread, so the event loop stays free. Only
one batch runs at a time, which also means the model is never used by two threads at once.

Every batch of a batcher runs on the same one thread, not on asyncio's default pool: PyTorch's CPU
build gives each thread that runs it its own OpenMP team, and once there are more teams than cores
every small operation pays a sleep and a wake-up (a request scored alone by SmolLM2 took 370 instead
of 254 ms with one idle extra team on 2 cores; see ``app.services.serving.policy_runtime``). The default pool
reuses an idle thread, so a SmolLM2 judge alone labelled as fast either way (44 labels in 21.1 vs
21.6 s); the pool spreads work over new threads once other calls keep its threads busy, which is
what made the API server pay. A lazily loaded model (the SmolLM2 judge) is loaded on that thread too.

This module knows nothing about judges or models: it batches calls to a function.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """`await submit(item)` returns `fn([.., item, ..])[i]`, with up to `max_batch` items per call."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._fn = fn
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._worker: asyncio.Task[None] | None = None
        self.calls = 0  # batched calls made (for tests and reports)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge-model")

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        # Yield once so that requests created in the same event-loop turn join the first batch.
        await asyncio.sleep(0)
        while self._pending:
            batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
            live = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not live:
                continue
            try:
                results = await asyncio.get_running_loop().run_in_executor(self._thread, self._fn, [item for item, _ in live])
                self.calls += 1
                if len(results) != len(live):
                    raise RuntimeError(f"batched function returned {len(results)} results for {len(live)} items")
            except Exception as exc:  # noqa: BLE001 - handed to every waiter of this batch
                for _, fut in live:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(live, results):
                if not fut.done():
                    fut.set_result(result)
