"""Dynamic micro-batching: concurrent single calls share one call of a batch function.

A model scores a batch far faster than the same items one by one. ``MicroBatcher`` collects the
items submitted while a batch is running, calls the batch function once in a worker thread (so the
event loop stays free), and hands each caller its own result. One batch runs at a time: the model
shares its CPU threads anyway, so batching, not concurrency, is what gains throughput. Pass
``executor`` to choose the thread the batch function runs on (why every model call of a process
should run on one thread: ``app.services.serving.policy_runtime``).

Its users: the serving path's policies (``app.services.serving.policy_runtime``) and the local
judges (``labeling.judges.batching``). It lives here, beside the batched reward scorer, because both
of those packages may import ``reward_models`` and ``labeling`` may not import ``app``.

``max_wait_s`` is how long the worker lingers after the first item of an idle period for others to
join (0: it yields once, so that items submitted in the same event-loop turn share the batch).
Measured lingers and batch sizes are in README's measured table (``bench/api_latency.py``).

One bad item never fails its batch (``isolate=True``, the default): when the shared call raises,
every item of that batch runs again alone, so only the item that raises gets the exception and
every other caller gets its result. That costs one extra call per item, only on the failing path.
A batch function that returns the wrong number of results is a bug, not a bad item: every caller
gets that error. An item whose caller has gone (its future cancelled) is not run.

This module knows nothing about models, policies or judges, and it does not time out on its own.

Example:
    >>> batcher = MicroBatcher(lambda xs: [x * 2 for x in xs], max_batch=32)
    >>> await batcher.submit(21)
    42
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["BatchStats", "MicroBatcher"]

X = TypeVar("X")
Y = TypeVar("Y")


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    sizes: list[int] = field(default_factory=list)
    isolated: int = 0  # items run alone because their batch raised

    @property
    def mean_batch(self) -> float:
        return self.items / self.batches if self.batches else 0.0


class MicroBatcher(Generic[X, Y]):
    """``await submit(item)`` returns ``fn([.., item, ..])[i]``, with up to ``max_batch`` items per call."""

    def __init__(self, fn: Callable[[Sequence[X]], Sequence[Y]], max_batch: int = 32, max_wait_s: float = 0.002,
                 on_batch: Callable[[int], None] | None = None, executor: Executor | None = None,
                 isolate: bool = True):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")
        self.fn, self.max_batch, self.max_wait_s, self.on_batch = fn, max_batch, max_wait_s, on_batch
        self.executor = executor  # None: asyncio's default thread pool
        self.isolate = isolate  # False: a raising batch hands its exception to every caller in it
        self.stats = BatchStats()
        self.calls = 0  # calls of fn that returned (for tests and reports)
        self._queue: asyncio.Queue[tuple[X, asyncio.Future[Y]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: X) -> Y:
        loop = asyncio.get_running_loop()
        if self._queue is None or self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run())
        future: asyncio.Future[Y] = loop.create_future()
        await self._queue.put((item, future))
        return await future

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            batch = [await queue.get()]
            await asyncio.sleep(self.max_wait_s)
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            batch = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            items = [item for item, _ in batch]
            try:
                results = await self._call(items)
            except _WrongCount as exc:
                self._settle(batch, [exc] * len(batch))
                continue
            except Exception as exc:  # noqa: BLE001 - isolated below, or handed to every caller of this batch
                if len(batch) == 1 or not self.isolate:
                    self._settle(batch, [exc] * len(batch))
                    continue
                results = [await self._alone(item) for item in items]
            else:
                self.stats.batches += 1
                self.stats.items += len(items)
                self.stats.sizes.append(len(items))
            self._settle(batch, results)

    async def _call(self, items: list[X]) -> Sequence[Y]:
        results = await asyncio.get_running_loop().run_in_executor(self.executor, self.fn, items)
        self.calls += 1
        if len(results) != len(items):
            raise _WrongCount(f"batch function returned {len(results)} results for {len(items)} items")
        return results

    async def _alone(self, item: X) -> Y | BaseException:
        """The result of ``item`` in a batch of its own, or the exception it raises there."""
        self.stats.isolated += 1
        try:
            [result] = await self._call([item])
        except Exception as exc:  # noqa: BLE001 - handed to this item's caller only
            return exc
        self.stats.batches += 1
        self.stats.items += 1
        self.stats.sizes.append(1)
        return result

    @staticmethod
    def _settle(batch: list[tuple[X, asyncio.Future[Y]]], results: Sequence[Y | BaseException]) -> None:
        for (_, fut), result in zip(batch, results):
            if fut.done():
                continue
            if isinstance(result, BaseException):
                fut.set_exception(result)
            else:
                fut.set_result(result)


class _WrongCount(RuntimeError):
    """The batch function broke its contract (one result per item): not an item's fault."""
