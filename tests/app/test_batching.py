"""Micro-batching: concurrent submissions share calls; each caller gets its own result or error."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from reward_models.batching import MicroBatcher


def test_concurrent_items_are_batched_and_results_routed():
    calls: list[list[int]] = []

    def fn(xs):
        calls.append(list(xs))
        time.sleep(0.05)  # while this runs, the other callers queue up
        return [x * 10 for x in xs]

    batcher = MicroBatcher(fn, max_batch=8)

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    results = asyncio.run(main())
    assert results == [i * 10 for i in range(20)]
    assert sum(len(c) for c in calls) == 20 and max(len(c) for c in calls) <= 8
    assert len(calls) < 20 and batcher.stats.mean_batch > 1


def test_failing_batch_fails_its_callers_only():
    def fn(xs):
        if 3 in xs:
            raise ValueError("bad item")
        return xs

    batcher = MicroBatcher(fn, max_batch=1)

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(5)), return_exceptions=True)

    out = asyncio.run(main())
    assert out[:3] == [0, 1, 2] and isinstance(out[3], ValueError) and out[4] == 4


def test_wrong_result_count_is_an_error():
    batcher = MicroBatcher(lambda xs: [1], max_batch=4, max_wait_s=0.01)

    async def main():
        return await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def test_one_batch_at_a_time():
    active, peak = 0, 0
    lock = threading.Lock()

    def fn(xs):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.01)
        with lock:
            active -= 1
        return xs

    batcher = MicroBatcher(fn, max_batch=2)

    async def main():
        await asyncio.gather(*(batcher.submit(i) for i in range(10)))

    asyncio.run(main())
    assert peak == 1


def test_max_batch_validated():
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_batch=0)
    with pytest.raises(ValueError):
        MicroBatcher(lambda xs: xs, max_wait_s=-0.001)


def test_every_batch_size_is_reported():
    sizes: list[int] = []

    def fn(xs):
        time.sleep(0.02)
        return list(xs)

    batcher = MicroBatcher(fn, max_batch=4, on_batch=sizes.append)

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(10)))

    assert asyncio.run(main()) == list(range(10))
    assert sum(sizes) == 10 and max(sizes) <= 4 and sizes == batcher.stats.sizes


def test_runtime_batches_with_the_configured_wait_and_reports_sizes(tmp_path):
    """``ARBITER_POLICY_MAX_WAIT_MS`` reaches each policy's batcher, whose batch sizes feed the metric."""
    from app.metrics import POLICY_BATCH_SIZE
    from app.models import PolicyVersion
    from app.services.serving.policy_runtime import PolicyRuntime
    from app.settings import Settings

    class Backend:  # every action equally likely; the shape of a policy backend
        def render(self, messages):
            return str(messages)

        def completion_logprobs(self, prompts, completions):
            import numpy as np

            return np.zeros((len(prompts), len(completions)))

    settings = Settings(var_dir=tmp_path, policy_max_wait_ms=40)
    runtime = PolicyRuntime(settings, backend_factory=lambda version: Backend(), max_batch=8)
    loaded = runtime.get(PolicyVersion(id="p1", decision_type="ticket-routing", name="p", base_model="x"))
    assert loaded.batcher.max_wait_s == pytest.approx(0.040)
    metric = POLICY_BATCH_SIZE.labels("ticket-routing")
    before = metric._sum.get()
    context = {"subject": "Refund", "body": "I was charged twice.", "customer": {"tier": "standard"}}

    async def main():
        return await asyncio.gather(*(loaded.batcher.submit(context) for _ in range(5)))

    assert len(asyncio.run(main())) == 5
    assert metric._sum.get() - before == 5


def test_runtime_loads_and_scores_every_policy_on_its_one_model_thread(tmp_path):
    """Loading and every batch of every policy run on the runtime's single model thread, never on the event
    loop's thread or asyncio's default pool (a second thread that runs torch slows every model call)."""
    from app.models import PolicyVersion
    from app.services.serving.policy_runtime import PolicyRuntime
    from app.settings import Settings

    threads: list[tuple[str, str]] = []

    class Backend:
        def render(self, messages):
            return str(messages)

        def completion_logprobs(self, prompts, completions):
            import numpy as np

            threads.append(("score", threading.current_thread().name))
            time.sleep(0.01)
            return np.zeros((len(prompts), len(completions)))

    def factory(version):
        threads.append(("load", threading.current_thread().name))
        return Backend()

    runtime = PolicyRuntime(Settings(var_dir=tmp_path), backend_factory=factory, max_batch=4)
    versions = [PolicyVersion(id=f"p{i}", decision_type="ticket-routing", name=f"p{i}", base_model="x") for i in range(2)]
    context = {"subject": "Refund", "body": "I was charged twice.", "customer": {"tier": "standard"}}

    async def main():
        loop_thread = threading.current_thread().name
        loaded = [await runtime.aget(v) for v in versions]
        assert await runtime.aget(versions[0]) is loaded[0]  # loaded once
        await asyncio.gather(*(p.batcher.submit(context) for p in loaded for _ in range(6)))
        generated = await runtime.run(lambda: threading.current_thread().name)
        return loop_thread, generated

    loop_thread, generated = asyncio.run(main())
    names = {name for _, name in threads} | {generated}
    assert [kind for kind, _ in threads].count("load") == 2 and threads.count(("score", next(iter(names)))) >= 2
    assert len(names) == 1 and loop_thread not in names and names.pop().startswith("arbiter-model")


def test_batcher_runs_on_the_given_executor():
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="only-here")
    batcher = MicroBatcher(lambda xs: [threading.current_thread().name for _ in xs], max_batch=4, executor=executor)

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(6)))

    assert {name.split("_")[0] for name in asyncio.run(main())} == {"only-here"}
    executor.shutdown()


def test_one_bad_item_fails_alone_and_its_batch_is_served():
    """The shared call raises because of item 3; every item of that batch is then run alone, so only
    item 3's caller gets the error and the other seven get their results."""
    calls: list[list[int]] = []

    def fn(xs):
        calls.append(list(xs))
        time.sleep(0.02)
        if 3 in xs:
            raise ValueError("bad item 3")
        return [x * 10 for x in xs]

    batcher = MicroBatcher(fn, max_batch=8, max_wait_s=0.01)

    async def main():
        return await asyncio.gather(*(batcher.submit(i) for i in range(8)), return_exceptions=True)

    out = asyncio.run(main())
    assert isinstance(out[3], ValueError) and str(out[3]) == "bad item 3"
    assert [r for i, r in enumerate(out) if i != 3] == [i * 10 for i in range(8) if i != 3]
    assert calls[0] == list(range(8)) and sorted(calls[1:]) == [[i] for i in range(8)]
    assert batcher.stats.isolated == 8


def test_a_poisoned_context_beside_valid_ones_fails_only_itself(tiny_causal_lm, tmp_path):
    """Second line behind the API's input guard: a context whose text makes the real tokenizer raise (a lone
    surrogate) shares a scoring batch with eight valid ones on the tiny policy; the eight are scored."""
    from app.models import PolicyVersion
    from app.services.serving.policy_runtime import PolicyRuntime
    from app.settings import Settings
    from policies.backends.local import TransformersBackend

    model, tokenizer = tiny_causal_lm
    backend = TransformersBackend(model, tokenizer, name="tiny")
    runtime = PolicyRuntime(Settings(var_dir=tmp_path, policy_max_wait_ms=20), backend_factory=lambda v: backend, max_batch=16)
    loaded = runtime.get(PolicyVersion(id="p1", decision_type="ticket-routing", name="p", base_model="x"))
    valid = [{"subject": f"Refund {i}", "body": "I was charged twice.", "customer": {"tier": "standard"}} for i in range(8)]
    poisoned = {"subject": "\ud800", "body": "x", "customer": {"tier": "vip"}}
    with pytest.raises(Exception):  # noqa: B017 - whatever the tokenizer raises; the point is that it does
        loaded.policy.score_batch([poisoned])

    async def main():
        jobs = [loaded.batcher.submit(c) for c in valid[:4]] + [loaded.batcher.submit(poisoned)] + \
            [loaded.batcher.submit(c) for c in valid[4:]]
        return await asyncio.gather(*jobs, return_exceptions=True)

    out = asyncio.run(main())
    assert isinstance(out[4], Exception)
    served = out[:4] + out[5:]
    assert all(isinstance(s, dict) and set(s) == set(loaded.policy.actions) for s in served), served
    assert loaded.batcher.stats.isolated >= 2  # the poisoned context did share a batch
    runtime.model_thread.shutdown()
