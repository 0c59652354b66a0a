"""`arbiter init && arbiter serve` on a fresh directory answers /healthz."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_init_then_serve(tmp_path: Path):
    arbiter = Path(sys.executable).parent / "arbiter"
    # Without the model steps (tests/app/test_warmup.py covers them with a tiny model): a fresh store, served.
    env = {**os.environ, "ARBITER_VAR_DIR": str(tmp_path / "var"), "ARBITER_PRELOAD_POLICIES": "false"}
    env.pop("ARBITER_DATABASE_URL", None)
    init = subprocess.run([arbiter, "init", "--no-model", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert init.returncode == 0, init.stderr
    assert '"admin_key": "ak_admin_' in init.stdout and (tmp_path / "var" / "arbiter.db").exists()
    port = _free_port()
    proc = subprocess.Popen([arbiter, "serve", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("server did not answer /healthz within 90 s")
        assert r.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()["database"] == "sqlite"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
