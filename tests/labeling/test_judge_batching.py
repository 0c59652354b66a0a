"""The local judges' micro-batcher: every batch on one thread of its own."""

from __future__ import annotations

import asyncio
import threading
import time

from labeling.judges.batching import MicroBatcher


def test_every_batch_runs_on_the_batchers_one_thread():
    threads: list[str] = []

    def fn(items):
        threads.append(threading.current_thread().name)
        time.sleep(0.005)  # while a batch runs, the next callers queue up
        return [i * 2 for i in items]

    batcher = MicroBatcher(fn, max_batch=3)

    async def main():
        first = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        await asyncio.to_thread(lambda: None)  # asyncio's default pool now has a thread of its own
        return first + await asyncio.gather(*(batcher.submit(i) for i in range(10, 14)))

    assert asyncio.run(main()) == [i * 2 for i in range(14)]
    assert len(threads) == batcher.calls >= 5 and len(set(threads)) == 1 and threads[0].startswith("judge-model")
