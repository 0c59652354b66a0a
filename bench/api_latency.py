"""Load the decision API on loopback: latency, throughput, and what dynamic micro-batching buys.

Starts `arbiter serve` twice on fresh SQLite stores with the embedded SmolLM2-135M-Instruct
routing policy: once with micro-batching (ARBITER_POLICY_MAX_BATCH=32) and once without (=1).
Against each it drives `POST /v1/decisions/ticket-routing` with N concurrent clients for a fixed
number of requests, and the same server's no-op `/healthz` alike. Then it checks that every 2xx
response has exactly one decision row, and reads the server's batch-size metric (how full its
batches were).

Precision: both servers and the scorer run in one policy precision. ``--dtype`` picks it; without
it, the bench measures the configured one (ARBITER_POLICY_DTYPE, else float32, the app's default)
and then, where bfloat16 is native (a CPU with AMX or AVX512_BF16), bfloat16 as well (``other_precisions``). The
scorer section also times the other precision in-process and reports how far its log-likelihoods
and probabilities are from the served ones.

Why the speed-up is what it is: the ``scorer`` section times the routing scorer in-process (no HTTP,
no store) at batch 1 and at batch N (median of 3), with the backend's prefix cache (the system message's key/value
states kept between calls) and without it, and counts the tokens one request costs alone and in a batch.
``one_pass_floor`` is the least any scorer can cost: one forward pass of exactly a request's tokens after the cached
system message, with no padding, alone and for N requests at once; its ``batching_ceiling`` is the most batching can
gain over a request scored alone in one pass, on this machine. On a 2-core CPU a pass of SmolLM2-135M costs ~45 ms
beyond its tokens and ~1.5 ms per token, and a request runs ~52 tokens, so the ceiling is about 2x in float32: a
batching speed-up above it would only mean that requests alone are scored wastefully. A GPU, where a pass's fixed
cost dwarfs its tokens', is where micro-batching gains 3x and more. The section also times a matrix product (in the
served precision) of the shape one request runs alone against a large one, and the other precision in-process.
``second_torch_thread_ms_batch_1`` is batch 1 again while another thread that has run torch is alive (libgomp
then stops spinning; see ``app.services.serving.policy_runtime``, which runs every model call on one thread for this
reason). Prints one JSON line.

    .venv/bin/python bench/api_latency.py [--concurrency 16] [--requests 160] [--dtype auto|float32|bfloat16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _machine import machine

REPO = Path(__file__).resolve().parents[1]
ARBITER = Path(sys.executable).parent / "arbiter"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tickets(n: int) -> list[dict]:
    try:
        from policies.simulator import TicketSimulator

        sim = TicketSimulator(seed=7)
        return [t.context for t in sim.tickets(n)]
    except Exception:  # noqa: BLE001 - the bench still runs on hand-written tickets
        teams = ["billing", "technical", "account", "shipping", "sales"]
        return [{"subject": f"Question {i} about {teams[i % 5]}", "body": f"Hello, I have an issue number {i} with my {teams[i % 5]}.",
                 "customer": {"tier": "standard", "language": "en"}} for i in range(n)]


async def _drive(url: str, method: str, bodies: list[dict | None], headers: dict, concurrency: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    ids: list[str] = []
    queue: asyncio.Queue = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            t0 = time.perf_counter()
            r = await client.request(method, url, json=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            if 200 <= r.status_code < 300 and body is not None:
                ids.append(r.json()["id"])

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=120) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(bodies), "rps": round(len(bodies) / wall, 2),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1),
            "statuses": statuses, "_ids": ids}


def _batch_sizes(metrics: str) -> tuple[int, float]:
    """(model calls, mean requests per call) from the server's ``arbiter_policy_batch_size`` histogram."""
    count = total = 0.0
    for line in metrics.splitlines():
        if line.startswith("arbiter_policy_batch_size_count"):
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith("arbiter_policy_batch_size_sum"):
            total += float(line.rsplit(" ", 1)[1])
    return int(count), round(total / count, 2) if count else 0.0


def _run_server(max_batch: int, concurrency: int, n: int, tickets: list[dict], dtype: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ARBITER_VAR_DIR": f"{tmp}/var", "ARBITER_POLICY_MAX_BATCH": str(max_batch), "ARBITER_POLICY_DTYPE": dtype,
               "HF_HUB_OFFLINE": "1", "ARBITER_DATABASE_URL": f"sqlite:///{tmp}/var/arbiter.db"}
        env["ARBITER_VAR_DIR"] = f"{tmp}/var"
        # Share the converted SmolLM2 checkpoint instead of converting it per run.
        os.makedirs(f"{tmp}/var", exist_ok=True)
        os.symlink(REPO / "var" / "models", f"{tmp}/var/models")
        init = subprocess.run([ARBITER, "init", "--json"], env=env, capture_output=True, text=True, check=True)
        admin = json.loads(init.stdout)["admin_key"]
        port = _port()
        proc = subprocess.Popen([ARBITER, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(240):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.5)
            key = httpx.post(f"{base}/v1/keys", json={"role": "app"}, headers={"Authorization": f"Bearer {admin}"}).json()["secret"]
            headers = {"Authorization": f"Bearer {key}"}
            url = f"{base}/v1/decisions/ticket-routing"
            # Warm up: load the model and the safety layer.
            asyncio.run(_drive(url, "POST", [{"context": tickets[0]}] * 2, headers, 1))
            bodies = [{"context": tickets[i % len(tickets)], "unit_id": f"u{i}"} for i in range(n)]
            decisions = asyncio.run(_drive(url, "POST", bodies, headers, concurrency))
            noop = asyncio.run(_drive(f"{base}/healthz", "GET", [None] * n, {}, concurrency))
            metrics = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {admin}"}).text
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        db = sqlite3.connect(f"{tmp}/var/arbiter.db")
        rows = dict(db.execute("SELECT id, COUNT(*) FROM decision GROUP BY id").fetchall())
        db.close()
        ids = decisions.pop("_ids")
        noop.pop("_ids")
        decisions["every_2xx_has_one_row"] = all(rows.get(i) == 1 for i in ids) and len(set(ids)) == len(ids)
        decisions["rows"] = sum(rows.values())
        decisions["model_calls"], decisions["mean_batch"] = _batch_sizes(metrics)
        return {"decisions": decisions, "noop": noop}


def _median_ms(fn, runs: int = 3) -> float:
    """Median wall time of ``runs`` calls of ``fn``, in milliseconds."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def _scorer_analysis(model_dir: Path, tickets: list[dict], batch: int, dtype: str) -> dict:
    """Per-request scorer cost at batch 1 vs ``batch`` (with and without the prefix cache), tokens per request,
    the cost of a second torch thread, and matmul throughput by rows."""
    import threading

    import torch

    from policies.action_policy import ActionPolicy
    from policies.backends.cpu_features import native_bfloat16
    from policies.backends.local import TransformersBackend
    from policies.backends.prefix_cache import PrefixCache, common_prefix
    from policies.decision_types import load_decision_types

    backend = TransformersBackend.load(model_dir, batch_size=batch, dtype=dtype)
    policy = ActionPolicy(load_decision_types()["ticket-routing"], backend)
    contexts = tickets[:batch]

    def per_request_ms(size: int) -> float:
        """Time per request to score ``batch`` requests in calls of ``size`` (median of 3)."""
        policy.score_batch(contexts[:2])  # warm up (and, with the prefix cache, store the system message)
        policy.score_batch(contexts[2:3])
        return _median_ms(lambda: [policy.score_batch(contexts[i : i + size]) for i in range(0, batch, size)]) / batch

    one, many = per_request_ms(1), per_request_ms(batch)
    served_scores = policy.score_batch(contexts)
    # The scorer in the other precision: what bfloat16 would save (or float32 cost), and how far the scores move.
    served_dtype = backend.model.dtype
    other = torch.float32 if served_dtype != torch.float32 else torch.bfloat16 if native_bfloat16() else None
    alternative = None
    if other is not None:
        policy.backend = TransformersBackend.load(model_dir, batch_size=batch, dtype=other)
        scores = policy.score_batch(contexts)
        one_other, many_other = per_request_ms(1), per_request_ms(batch)
        drift = [abs(a[k] - b[k]) for a, b in zip(served_scores, scores) for k in a]
        probs = [(policy.probabilities(a), policy.probabilities(b)) for a, b in zip(served_scores, scores)]
        alternative = {"dtype": str(other).removeprefix("torch."), "per_request_ms_batch_1": round(one_other, 1),
                       f"per_request_ms_batch_{batch}": round(many_other, 1), "scorer_speedup": round(one_other / many_other, 2),
                       "logprob_abs_diff_mean": round(statistics.mean(drift), 4), "logprob_abs_diff_max": round(max(drift), 4),
                       "probability_abs_diff_max": round(max(abs(p[k] - q[k]) for p, q in probs for k in p), 4),
                       "same_greedy_action": round(statistics.mean(max(p, key=p.get) == max(q, key=q.get) for p, q in probs), 3)}
        policy.backend = backend
    # Another thread that has run torch and is still alive (as asyncio's default pool leaves them).
    ran, stop = threading.Event(), threading.Event()
    holder = threading.Thread(target=lambda: (policy.score_batch(contexts[:1]), ran.set(), stop.wait()))
    holder.start()
    ran.wait()
    second_thread = per_request_ms(1)
    stop.set()
    holder.join()
    backend.prefix_cache = PrefixCache(0)
    one_plain, many_plain = per_request_ms(1), per_request_ms(batch)

    prompts = [backend.tokenizer(text=policy.prompt(c))["input_ids"] for c in contexts]
    shared = min(common_prefix(prompts[0], p) for p in prompts)
    answer_tokens = sum(len(backend.tokenizer(text=policy.prompt(contexts[0]) + a + backend.end_of_turn)["input_ids"])
                        - len(prompts[0]) for a in policy.actions)
    answer_inputs = answer_tokens - len(policy.actions)  # an answer's end-of-turn token predicts nothing and is not run
    hidden, ffn = backend.model.config.hidden_size, backend.model.config.intermediate_size

    def gflops(rows: int) -> float:
        a, b = torch.randn(rows, hidden, dtype=backend.model.dtype), torch.randn(hidden, ffn, dtype=backend.model.dtype)
        for _ in range(3):
            a @ b
        reps = max(10, 20000 // rows)
        started = time.perf_counter()
        for _ in range(reps):
            a @ b
        return 2 * rows * hidden * ffn * reps / (time.perf_counter() - started) / 1e9

    mean_prompt = statistics.mean(len(p) for p in prompts)
    rows_alone = round(mean_prompt - shared + answer_inputs)  # with the system message's states cached
    # The floor of any scorer: one pass of exactly a request's tokens after the cached system message (no padding),
    # plus the output embedding at the states that predict answer tokens, for one request and for `batch` at once.
    # A request alone cannot cost less than `alone`, a batch not less than `together`: their ratio is the most that
    # batching can gain over a request scored alone in one pass, on this machine.
    system = backend._states(prompts[0][:shared])

    def one_pass_ms(rows: int) -> float:
        ids = torch.randint(0, backend.model.config.vocab_size, (rows, rows_alone))

        def run() -> None:
            cache, past = backend._resume(system, rows)
            states, _, _ = backend._extend(ids, torch.ones_like(ids), past, cache)
            backend._logp(states[:, : 1 + answer_inputs].reshape(-1, hidden))

        with torch.no_grad():
            run()
            return _median_ms(run)

    alone, together = one_pass_ms(1), one_pass_ms(batch)
    return {
        "dtype": str(backend.model.dtype).removeprefix("torch."),
        "per_request_ms_batch_1": round(one, 1), f"per_request_ms_batch_{batch}": round(many, 1),
        "scorer_speedup": round(one / many, 2), "other_precision": alternative,
        "one_pass_floor": {"per_request_ms_batch_1": round(alone, 1), f"per_request_ms_batch_{batch}": round(together / batch, 1),
                           "batching_ceiling": round(alone / (together / batch), 2)},
        "no_prefix_cache": {"per_request_ms_batch_1": round(one_plain, 1), f"per_request_ms_batch_{batch}": round(many_plain, 1),
                            "scorer_speedup": round(one_plain / many_plain, 2)},
        "prefix_cache_speedup_batch_1": round(one_plain / one, 2),
        "second_torch_thread_ms_batch_1": round(second_thread, 1),
        "prompt_tokens_mean": round(mean_prompt, 1), "shared_prefix_tokens": shared, "answer_tokens": answer_tokens,
        "tokens_per_request_alone": round(mean_prompt + answer_inputs, 1),
        "tokens_per_request_alone_prefix_cached": rows_alone,
        "tokens_per_request_in_batch": round(mean_prompt - shared + answer_inputs + shared / batch, 1),
        "matmul_gflops_rows_alone": round(gflops(rows_alone), 1),
        "matmul_gflops_rows_1024": round(gflops(1024), 1),
    }


def _measure(model_dir: Path, tickets: list[dict], concurrency: int, n: int, dtype: str) -> dict:
    print(f"[bench] {dtype}: scorer in-process, batch 1 vs batch {concurrency}", file=sys.stderr)
    scorer = _scorer_analysis(model_dir, tickets, concurrency, dtype)
    print(f"[bench] {dtype}: batched server, {concurrency} clients x {n} requests", file=sys.stderr)
    batched = _run_server(32, concurrency, n, tickets, dtype)
    print(f"[bench] {dtype}: unbatched server", file=sys.stderr)
    unbatched = _run_server(1, concurrency, n, tickets, dtype)
    speedup = batched["decisions"]["rps"] / unbatched["decisions"]["rps"]
    return {"dtype": scorer["dtype"], "batched": batched, "unbatched": unbatched, "batching_speedup": round(speedup, 2),
            "meets_target": speedup >= 3.0, "scorer": scorer, "scorer_meets_target": scorer["scorer_speedup"] >= 3.0,
            "batching_ceiling": scorer["one_pass_floor"]["batching_ceiling"],
            "no_lost_decisions": batched["decisions"]["every_2xx_has_one_row"] and unbatched["decisions"]["every_2xx_has_one_row"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default=None,
                        help="one policy precision for both servers and the scorer (default: ARBITER_POLICY_DTYPE or "
                             "float32, then bfloat16 too where it is native)")
    args = parser.parse_args()
    from policies.backends.cpu_features import native_bfloat16
    from reward_models.local_models import smollm2_dir

    model_dir = smollm2_dir(REPO / "var" / "models")
    tickets = _tickets(64)
    if args.dtype:
        dtypes = [args.dtype]
    else:
        dtypes = [os.environ.get("ARBITER_POLICY_DTYPE", "float32")]
        dtypes += ["bfloat16"] if native_bfloat16() and dtypes[0] == "float32" else []
    runs = [_measure(model_dir, tickets, args.concurrency, args.requests, d) for d in dtypes]
    first = runs[0]  # the configured (default) precision; the others follow under "other_precisions"
    print(json.dumps({
        "bench": "api_latency", "concurrency": args.concurrency, "requests": args.requests, "target_speedup": 3.0,
        **first, "other_precisions": runs[1:], "no_lost_decisions": all(r["no_lost_decisions"] for r in runs),
        "machine": machine(),
    }))


if __name__ == "__main__":
    main()
