"""Wall time of `arbiter --help` and `arbiter keys list` (fresh processes, a fresh SQLite store).

Every CLI call pays Python start-up, building the command tree and, for `keys list`, opening the
store. Heavy libraries (torch, transformers, TRL, sklearn, the Argilla SDK) belong only to the
commands that use them; this measures what a call that needs none of them costs. Target: both under
1.5 s on the project's 2-core machine.

Prints one JSON line: the median and range of wall seconds over ``--runs`` runs of each command, the
median CPU seconds of the process, the machine, and the load average when it started (the machine is
shared; a high load inflates wall times far more than CPU times).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
COMMANDS = {"help": ["--help"], "keys_list": ["keys", "list"]}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(args: list[str], env: dict[str, str], runs: int) -> dict:
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), _children_cpu()
        subprocess.run([sys.executable, "-m", "app.cli.main", *args], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        cpu.append(_children_cpu() - start_cpu)
    # CPU seconds (user + system) depend far less on what else runs on the machine than wall time does; on an
    # idle machine a call's wall time is close to them (start-up runs on one thread).
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3), "max_s": round(max(times), 3),
            "median_cpu_s": round(statistics.median(cpu), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ARBITER_VAR_DIR": tmp, "ARBITER_DATABASE_URL": f"sqlite:///{tmp}/arbiter.db",
               "ARBITER_ENVIRONMENT": "local"}
        subprocess.run([sys.executable, "-m", "app.cli.main", "init", "--no-admin-key"], cwd=REPO, env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        figures = {name: time_command(cmd, env, args.runs) for name, cmd in COMMANDS.items()}
    print(json.dumps({"bench": "cli_startup", "runs": args.runs, **figures, "target_s": 1.5,
                      "load_avg_1m_at_start": round(load, 2), "machine": machine()}))


if __name__ == "__main__":
    main()
