"""One bad request must not hurt the others: a poisoned batch, and normal latency beside a maximal request.

Starts `arbiter serve` on a fresh SQLite store with the embedded SmolLM2-135M-Instruct policies and measures:

- ``poisoned_http``: ``--rounds`` rounds of 8 valid ticket-routing requests sent at once with one whose subject
  is a lone surrogate (valid JSON; it made the tokenizer raise inside the shared model call and failed 36 of 40
  valid requests over 5 rounds). Counts valid requests served and what the poisoned one got (422 from the input
  guard).
- ``poisoned_in_process``: the second line, behind the guard. The same poisoned context goes straight into the
  policy's micro-batcher beside 8 valid ones (real SmolLM2, in this process, after the server stopped); counts
  valid ones scored and items run alone.
- ``latency``: p50/p99 of normal routing decisions from ``--concurrency`` clients, alone (``baseline``), while
  one client keeps sending the largest legal ticket (every field at its schema maximum, ~40 KB of text, cut to
  the ticket-routing token budgets: ``maximal_ticket``), and while one client keeps sending the largest legal
  chat request (a conversation just under the content type's 2,048-token limit, ``max_tokens`` 4096, capped at
  512 tokens and 30 s: ``maximal_chat``). Each section also reports the adversarial requests' own latency.

Every model call of a server runs on one model thread (app.services.serving.policy_runtime), so a chat generation holds
routing decisions until it ends: the bounds on prompt tokens, new tokens and generation time are what keep that
wait finite. Prints one JSON line.

    .venv/bin/python bench/poisoned_batch.py [--rounds 5] [--requests 40] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
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
POISONED_SUBJECT = '"\\ud800"'  # raw JSON text: a lone surrogate escape
WORDS = ("invoice refund charged twice account password shipping parcel tracking error outage lawyer pricing plan "
         "quote delivery return login profile bug crash subscription cancel upgrade discount").split()


def _log(msg: str) -> None:
    print(f"[poisoned_batch {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tickets(n: int) -> list[dict]:
    from policies.simulator import TicketSimulator

    sim = TicketSimulator(seed=11)
    return [sim.ticket(i).context for i in range(n)]


def _text(chars: int, seed: int) -> str:
    words, i = [], seed
    while sum(len(w) + 1 for w in words) < chars:
        words.append(WORDS[(i * 7919) % len(WORDS)])
        i += 1
    return " ".join(words)[:chars]


def _maximal_ticket() -> dict:
    """Every free-text field of ticket-routing at its schema maximum (subject 300, body 8000, language 35)."""
    return {"subject": _text(300, 1), "body": _text(8000, 2), "mentions_legal_action": False,
            "customer": {"tier": "vip", "region": "eu", "language": "en-GB-oxendict-x-abcdefgh-12345678"}}


def _maximal_chat() -> dict:
    return {"messages": [{"role": "user", "content": _text(6500, 3)}], "max_tokens": 4096, "temperature": 1.0}


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(1000 * values[min(len(values) - 1, int(q * len(values)))], 1)


async def _normal_load(client: httpx.AsyncClient, url: str, headers: dict, tickets: list[dict], n: int,
                       concurrency: int) -> dict:
    queue: asyncio.Queue = asyncio.Queue()
    for i in range(n):
        queue.put_nowait({"context": tickets[i % len(tickets)], "unit_id": f"u{i}"})
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            t0 = time.perf_counter()
            r = await client.post(url, json=body, headers=headers)
            latencies.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"requests": n, "p50_ms": round(1000 * statistics.median(latencies), 1), "p99_ms": _pct(latencies, 0.99),
            "max_ms": round(1000 * max(latencies), 1), "statuses": statuses}


async def _beside(client: httpx.AsyncClient, base: str, headers: dict, tickets: list[dict], n: int, concurrency: int,
                  adversary: tuple[str, dict] | None) -> dict:
    """Normal load, with one client sending ``adversary`` (path, body) back to back until the load is done."""
    done = asyncio.Event()
    adv: list[float] = []
    adv_status: dict[str, int] = {}

    async def attacker() -> None:
        path, body = adversary
        while not done.is_set():
            t0 = time.perf_counter()
            r = await client.post(f"{base}{path}", json=body, headers=headers)
            adv.append(time.perf_counter() - t0)
            verdict = r.json().get("safety", {}).get("verdict") if path.startswith("/v1/decisions") and r.status_code == 200 else None
            key = f"{r.status_code}" + (f":{verdict}" if verdict else "")
            adv_status[key] = adv_status.get(key, 0) + 1

    task = asyncio.create_task(attacker()) if adversary else None
    if task is not None:
        await asyncio.sleep(0.5)  # the adversarial request is on the model thread first
    out = await _normal_load(client, f"{base}/v1/decisions/ticket-routing", headers, tickets, n, concurrency)
    done.set()
    if task is not None:
        await task
        out["adversarial"] = {"requests": len(adv), "p50_ms": round(1000 * statistics.median(adv), 1),
                              "max_ms": round(1000 * max(adv), 1), "statuses": adv_status}
    return out


async def _poisoned_round(client: httpx.AsyncClient, url: str, headers: dict, tickets: list[dict]) -> tuple[int, int, int]:
    valid = [client.post(url, json={"context": t}, headers=headers) for t in tickets[:8]]
    raw = ('{"context": {"subject": ' + POISONED_SUBJECT + ', "body": "I was charged twice.", '
           '"customer": {"tier": "standard"}}}')
    poisoned = client.post(url, content=raw.encode(), headers={**headers, "Content-Type": "application/json"})
    results = await asyncio.gather(*valid[:4], poisoned, *valid[4:])
    served = sum(r.status_code == 200 for i, r in enumerate(results) if i != 4)
    return served, len(results) - 1, results[4].status_code


def _server_sections(args: argparse.Namespace, tickets: list[dict]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ARBITER_VAR_DIR": f"{tmp}/var", "HF_HUB_OFFLINE": "1",
               "ARBITER_DATABASE_URL": f"sqlite:///{tmp}/var/arbiter.db"}
        os.makedirs(f"{tmp}/var", exist_ok=True)
        os.symlink(REPO / "var" / "models", f"{tmp}/var/models")  # the converted SmolLM2, shared
        init = subprocess.run([ARBITER, "init", "--json"], env=env, capture_output=True, text=True, check=True)
        admin = json.loads(init.stdout)["admin_key"]
        port = _port()
        proc = subprocess.Popen([ARBITER, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):  # ready: the database answers and the policies are loaded and warm
                try:
                    if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            key = httpx.post(f"{base}/v1/keys", json={"role": "app"}, headers={"Authorization": f"Bearer {admin}"},
                             timeout=120).json()["secret"]
            headers = {"Authorization": f"Bearer {key}"}
            return asyncio.run(_drive(base, headers, tickets, args))
        finally:
            proc.terminate()
            proc.wait(timeout=60)


async def _drive(base: str, headers: dict, tickets: list[dict], args: argparse.Namespace) -> dict:
    url = f"{base}/v1/decisions/ticket-routing"
    async with httpx.AsyncClient(timeout=300) as client:
        _log("warming up (loads both policies)")
        await client.post(url, json={"context": tickets[0]}, headers=headers)
        await client.post(f"{base}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                          headers=headers)
        served = total = 0
        poisoned_statuses: dict[int, int] = {}
        for r in range(args.rounds):
            s, t, status = await _poisoned_round(client, url, headers, tickets[8 * r:] + tickets)
            served, total = served + s, total + t
            poisoned_statuses[status] = poisoned_statuses.get(status, 0) + 1
        _log(f"poisoned rounds: {served}/{total} valid served")
        out = {"poisoned_http": {"rounds": args.rounds, "valid_served": served, "valid_sent": total,
                                 "poisoned_statuses": poisoned_statuses}}
        latency = {}
        for name, adversary in (("baseline", None), ("maximal_ticket", ("/v1/decisions/ticket-routing", {"context": _maximal_ticket()})),
                                ("maximal_chat", ("/v1/chat/completions", _maximal_chat()))):
            _log(f"latency: {name}")
            latency[name] = await _beside(client, base, headers, tickets, args.requests, args.concurrency, adversary)
            _log(f"  {latency[name]}")
        out["latency"] = latency
        return out


def _in_process(tickets: list[dict]) -> dict:
    """The poisoned context straight into the real policy's micro-batcher (no input guard in front)."""
    from app.models import PolicyVersion
    from app.services.serving.policy_runtime import PolicyRuntime
    from app.settings import Settings
    from policies.backends.local import TransformersBackend
    from reward_models.local_models import smollm2_dir

    backend = TransformersBackend.load(smollm2_dir(REPO / "var" / "models"))
    with tempfile.TemporaryDirectory() as tmp:
        runtime = PolicyRuntime(Settings(var_dir=Path(tmp), policy_max_wait_ms=20), backend_factory=lambda v: backend)
        loaded = runtime.get(PolicyVersion(id="bench", decision_type="ticket-routing", name="bench", base_model="x"))
        poisoned = {"subject": "\ud800", "body": "I was charged twice.", "customer": {"tier": "standard"}}

        async def one_round() -> list:
            jobs = [loaded.batcher.submit(t) for t in tickets[:4]] + [loaded.batcher.submit(poisoned)] + \
                [loaded.batcher.submit(t) for t in tickets[4:8]]
            return await asyncio.gather(*jobs, return_exceptions=True)

        out = asyncio.run(one_round())
        runtime.model_thread.shutdown()
    valid = out[:4] + out[5:]
    return {"valid_scored": sum(isinstance(v, dict) for v in valid), "valid_sent": len(valid),
            "poisoned_error": type(out[4]).__name__ if isinstance(out[4], BaseException) else None,
            "items_run_alone": loaded.batcher.stats.isolated}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=40, help="normal decisions per latency section")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    t0 = time.perf_counter()
    tickets = _tickets(80)
    result = _server_sections(args, tickets)
    _log("in-process poisoned batch")
    result["poisoned_in_process"] = _in_process(tickets)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["machine"] = machine()
    print(json.dumps({"bench": "poisoned_batch", **result}))


if __name__ == "__main__":
    main()
