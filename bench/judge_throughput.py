"""Judge throughput: bounded concurrency against one call at a time, same run, same server.

A loopback server that speaks OpenAI's wire format (the test suite's fake, in its own process, as a
real provider would be) answers every call after a fixed latency (300 ms by default); the real
`openai` SDK client and the whole judge stack (retries, budget,
tracing no-op, both orders per pair) run against it. With C calls in flight the ideal is C/latency
calls per second, i.e. C/(2 x latency) labels per second; the target is 85% of that.

Prints one JSON line: labels/s with concurrency and sequentially, their ratio, the efficiency
against the ideal, and the machine.

    .venv/bin/python bench/judge_throughput.py [--latency 0.3] [--concurrency 32] [--pairs 320]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from labeling import (
    Comparison,
    LabelingConfig,
    OpenAIJudgeConfig,
    RetryPolicy,
    build_chain,
    label_comparisons,
)


def comparisons(n: int, prefix: str) -> list[Comparison]:
    return [
        Comparison(f"{prefix}{i}", f"Question {i}?", f"A good answer {i}.", f"A bad answer {i}.")
        for i in range(n)
    ]


def fake_server(latency: float) -> tuple[subprocess.Popen, str]:
    """The test suite's loopback provider (tests/labeling/fake_providers.py) in its own process."""
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.labeling.fake_providers", "--latency", str(latency)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    return process, process.stdout.readline().strip()  # type: ignore[union-attr]


def server_call(root: str, path: str, method: str = "GET") -> dict:
    request = urllib.request.Request(root + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def measure(root: str, pairs: int, concurrency: int, prefix: str) -> dict:
    built = build_chain(
        LabelingConfig(
            judges=["openai"],
            openai=OpenAIJudgeConfig(api_key="sk-bench", base_url=root + "/v1", timeout_s=30.0),
            retry=RetryPolicy(timeout_s=30.0),
        )
    )
    server_call(root, "/_fake/reset", "POST")
    try:
        report = await label_comparisons(comparisons(pairs, prefix), built.chain, concurrency=concurrency, progress=True)
    finally:
        await built.aclose()
    if report.failures or len(report.labels) != pairs:
        raise SystemExit(f"benchmark run lost pairs: {len(report.failures)} failures")
    return {
        "pairs": pairs,
        "calls": 2 * pairs,
        "elapsed_s": round(report.elapsed_s, 3),
        "labels_per_s": round(report.labels_per_s, 3),
        "max_in_flight_at_server": server_call(root, "/_fake/stats")["openai"]["max_in_flight"],
    }


def machine() -> dict:
    try:
        import torch

        torch_version, device = torch.__version__, "cuda" if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a project dependency
        torch_version, device = None, "cpu"
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),  # the machine is shared: context for the figures
        "torch": torch_version,
        "device": device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.3, help="server latency per call, seconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=320, help="pairs for the concurrent run")
    parser.add_argument("--sequential-pairs", type=int, default=16, help="pairs for the one-at-a-time run")
    args = parser.parse_args()

    process, root = fake_server(args.latency)
    try:
        sequential = asyncio.run(measure(root, args.sequential_pairs, 1, "seq-"))
        concurrent = asyncio.run(measure(root, args.pairs, args.concurrency, "conc-"))
    finally:
        process.stdin.close()  # type: ignore[union-attr]
        process.wait(timeout=10)

    ideal = args.concurrency / args.latency / 2  # labels per second: two calls per label
    efficiency = concurrent["labels_per_s"] / ideal
    print(
        json.dumps(
            {
                "benchmark": "judge_throughput",
                "latency_s": args.latency,
                "concurrency": args.concurrency,
                "concurrent": concurrent,
                "sequential": sequential,
                "speedup_concurrent_vs_sequential": round(concurrent["labels_per_s"] / sequential["labels_per_s"], 2),
                "ideal_labels_per_s": round(ideal, 3),
                "efficiency_vs_ideal": round(efficiency, 3),
                "target_efficiency": 0.85,
                "meets_target": efficiency >= 0.85,
                "machine": machine(),
            }
        )
    )


if __name__ == "__main__":
    main()
