"""The local judges' micro-batcher: `reward_models.batching.MicroBatcher` on a thread of its own.

The labeling runner judges many pairs concurrently; a local model answers a batch of them far
faster than the same requests one by one. The batching itself is `reward_models.batching`'s (one
implementation for the serving path and the judges); this module only fixes how the judges use it.

Every batch of a batcher runs on the same one thread, not on asyncio's default pool: PyTorch's CPU
build gives each thread that runs it its own OpenMP team, and once there are more teams than cores
every small operation pays a sleep and a wake-up (see ``app.services.serving.policy_runtime``). The
default pool spreads work over new threads once other calls keep its threads busy. A lazily loaded
model (the SmolLM2 judge) is loaded on that thread too.

Unlike the serving path's batcher, a batch that raises hands its exception to every request in it
(no item-by-item rerun): the judge chain then falls back for those pairs.

This module knows nothing about judges or models: it batches calls to a function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from reward_models.batching import MicroBatcher as _MicroBatcher

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(_MicroBatcher[T, R]):
    """`await submit(item)` returns `fn([.., item, ..])[i]`, with up to `max_batch` items per call."""

    def __init__(self, fn: Callable[[list[T]], Sequence[R]], max_batch: int = 8) -> None:
        super().__init__(
            fn,  # type: ignore[arg-type]
            max_batch=max_batch,
            max_wait_s=0.0,  # yield once: requests made in the same event-loop turn join the first batch
            executor=ThreadPoolExecutor(max_workers=1, thread_name_prefix="judge-model"),
            isolate=False,
        )
