"""One live embedded Argilla per test session, shared by every test module that asks for it (test support, not product).

Starting argilla-server takes about ten seconds, so tests share one instance: the first call to
`shared_embedded_argilla` starts it (own data directory, free port, and a private `redis-server`
on a free port when that binary exists, so that its rq queues cannot mix with another instance's),
later calls return the same one, and it stops when the pytest session ends (`config.add_cleanup`)
or the interpreter exits.

Missing prerequisites (argilla-server's virtual environment, Redis) are reported as a reason
string, for the caller to `pytest.skip` with; a server that fails to start for any other reason
raises, so that a real breakage is not hidden as a skip.
"""

from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeling.argilla.server import (
    EmbeddedArgilla,
    EmbeddedArgillaConfig,
    free_port,
    start_embedded,
    stop_embedded,
)

__all__ = ["LiveArgilla", "shared_embedded_argilla"]

_SHARED: LiveArgilla | str | None = None  # the instance, or the reason it cannot run


@dataclass
class LiveArgilla:
    config: EmbeddedArgillaConfig
    instance: EmbeddedArgilla
    redis: subprocess.Popen | None

    def stop(self) -> None:
        stop_embedded(self.config)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.terminate()
            try:
                self.redis.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis.kill()


def _private_redis(data_dir: Path) -> tuple[str, subprocess.Popen | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        return "redis://127.0.0.1:6379/15", None
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(data_dir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return f"redis://127.0.0.1:{port}/0", process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("private redis-server did not start within 10 s")


def _redis_reachable(url: str) -> bool:
    host_port = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = host_port.partition(":")
    try:
        socket.create_connection((host, int(port or 6379)), timeout=2).close()
        return True
    except OSError:
        return False


def shared_embedded_argilla(venv_dir: Path, data_root: Path, config: Any = None) -> LiveArgilla | str:
    """The session's embedded Argilla, or why it cannot run (a reason to skip with).

    `config` is the pytest config; when given, the server stops at the end of the session.
    """
    global _SHARED
    if _SHARED is not None:
        return _SHARED
    if not (Path(venv_dir) / "bin" / "python").exists():
        _SHARED = f"argilla-server's virtual environment is missing at {venv_dir}: run scripts/setup_argilla.sh"
        return _SHARED

    data_dir = Path(data_root) / "argilla"
    data_dir.mkdir(parents=True, exist_ok=True)
    redis_url, redis = _private_redis(data_dir)
    if redis is None and not _redis_reachable(redis_url):
        _SHARED = "Redis is not running on 127.0.0.1:6379 and redis-server is not installed"
        return _SHARED

    cfg = EmbeddedArgillaConfig(data_dir=data_dir, venv_dir=Path(venv_dir), port=free_port(), redis_url=redis_url)
    try:
        instance = start_embedded(cfg)
    except Exception:
        if redis is not None:
            redis.kill()
        raise
    live = LiveArgilla(cfg, instance, redis)
    _SHARED = live
    atexit.register(live.stop)
    if config is not None:
        config.add_cleanup(live.stop)
    return live
