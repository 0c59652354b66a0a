"""Start and stop the embedded Argilla: the real `argilla-server` package, no Elasticsearch.

argilla-server 2.8 pins older FastAPI and pydantic than Arbiter, so it runs from its own virtual
environment (`scripts/setup_argilla.sh` creates it) as two child processes: the web server and
one rq worker (Argilla delivers webhooks and runs some dataset jobs through rq). Both run
`server_main.py` with `ARGILLA_SEARCH_ENGINE=arbiter-inprocess`, the engine in
`inprocess_search.py` that answers searches from argilla-server's SQLite database. Redis is
required (argilla-server refuses to start without it); the database lives in `data_dir`.

`start_embedded` is idempotent: it migrates the database, makes sure the workspaces and users exist
(credentials are generated once and kept in `data_dir/credentials.json`), starts
the processes, writes their pid files and waits until the API answers. When the server already
runs it returns at once. `stop_embedded` ends exactly the processes named in the pid files.

Roles: an owner (Arbiter's own key), an annotator, a member of `workspace` only (the preference
datasets), and a reviewer, a member of `review_workspace` only (the trust-and-safety review dataset).
The review queue's role rule holds in Argilla as in the Arbiter API: annotators cannot open or answer
review records, and the bootstrap removes any other membership of the review workspace it manages.

This module does not read the environment: the caller passes an `EmbeddedArgillaConfig`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import httpx

from labeling.argilla.client import ArgillaConnection

__all__ = [
    "ArgillaCredentials",
    "EmbeddedArgilla",
    "EmbeddedArgillaConfig",
    "EmbeddedArgillaError",
    "embedded_status",
    "free_port",
    "start_embedded",
    "stop_embedded",
]

SEARCH_ENGINE = "arbiter-inprocess"  # inprocess_search.ENGINE_NAME (that module needs argilla_server)
_HERE = Path(__file__).resolve().parent
_ENTRY = _HERE / "server_main.py"


class EmbeddedArgillaError(RuntimeError):
    """The embedded Argilla could not be set up, started or stopped; the message says why."""


@dataclass(frozen=True)
class EmbeddedArgillaConfig:
    """Where the embedded Argilla keeps its files and how to reach it."""

    data_dir: Path  # database, logs, pid files, credentials (e.g. var/argilla)
    venv_dir: Path  # argilla-server's virtual environment (e.g. var/argilla-venv)
    host: str = "127.0.0.1"
    port: int = 6900
    redis_url: str = "redis://127.0.0.1:6379/3"  # a db of its own: rq queue names are fixed
    workspace: str = "arbiter"
    review_workspace: str = "arbiter-review"  # the review dataset's: reviewers only
    owner_username: str = "arbiter-owner"
    annotator_username: str = "annotator"
    reviewer_username: str = "reviewer"
    with_worker: bool = True
    start_timeout_s: float = 120.0

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be in 1..65535, got {self.port}")
        if self.review_workspace == self.workspace:
            raise ValueError("the review workspace must differ from the annotators' workspace")
        if urlparse(self.redis_url).scheme not in ("redis", "rediss"):
            raise ValueError(f"redis_url must be a redis:// URL, got {self.redis_url!r}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def python(self) -> Path:
        # absolute(), not resolve(): the venv's python is a symlink and must stay one to find its venv
        return Path(self.venv_dir).absolute() / "bin" / "python"

    @property
    def database_path(self) -> Path:
        return Path(self.data_dir) / "argilla.db"

    def pid_file(self, role: str) -> Path:
        return Path(self.data_dir) / f"{role}.pid"

    def log_file(self, role: str) -> Path:
        return Path(self.data_dir) / f"{role}.log"


@dataclass(frozen=True)
class ArgillaCredentials:
    username: str
    password: str
    api_key: str
    role: str  # Argilla's role: "owner" | "annotator" (a reviewer is an annotator of the review workspace)


@dataclass(frozen=True)
class EmbeddedArgilla:
    """A running embedded Argilla."""

    url: str
    workspace: str
    owner: ArgillaCredentials
    annotator: ArgillaCredentials
    server_pid: int
    worker_pid: int | None
    already_running: bool
    reviewer: ArgillaCredentials | None = None
    review_workspace: str = "arbiter-review"

    def connection(self) -> ArgillaConnection:
        """An owner connection for `ArgillaClient`."""
        return ArgillaConnection(api_url=self.url, api_key=self.owner.api_key)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (for tests and `--port 0`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- credentials


def _credentials(config: EmbeddedArgillaConfig) -> tuple[ArgillaCredentials, ArgillaCredentials, ArgillaCredentials]:
    """The owner, annotator and reviewer credentials, generated on first use and then reused."""
    path = Path(config.data_dir) / "credentials.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    users = []
    for key, username, role in (("owner", config.owner_username, "owner"),
                                ("annotator", config.annotator_username, "annotator"),
                                ("reviewer", config.reviewer_username, "annotator")):
        entry = stored.get(key)
        if not entry or entry.get("username") != username:
            entry = {
                "username": username,
                "password": secrets.token_urlsafe(12),
                "api_key": f"{key}.{secrets.token_urlsafe(24)}",
                "role": role,
            }
            stored[key] = entry
        users.append(ArgillaCredentials(**entry))
    _write_private(path, json.dumps(stored, indent=2))
    return users[0], users[1], users[2]


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, without a moment where it is readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    path.chmod(0o600)  # O_CREAT's mode does not apply to a file that already existed


# ---------------------------------------------------------------------------- processes


def _child_env(config: EmbeddedArgillaConfig) -> dict[str, str]:
    """A clean environment for argilla-server: nothing leaks in from Arbiter's own."""
    data = Path(config.data_dir).resolve()
    return {
        "PATH": f"{Path(config.venv_dir).absolute() / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(data),
        "TMPDIR": str(data / "tmp"),  # argilla-server copies its UI statics to a temp dir on start
        "LANG": "C.UTF-8",
        "ARGILLA_HOME_PATH": str(data),
        "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{data / 'argilla.db'}",
        "ARGILLA_REDIS_URL": config.redis_url,
        "ARGILLA_SEARCH_ENGINE": SEARCH_ENGINE,
        "ARGILLA_ENABLE_TELEMETRY": "false",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still "exists"; reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def _read_pid(config: EmbeddedArgillaConfig, role: str) -> int | None:
    path = config.pid_file(role)
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    if _alive(pid):
        return pid
    path.unlink(missing_ok=True)  # stale: the process is gone
    return None


def _spawn(config: EmbeddedArgillaConfig, role: str, args: list[str], stdin_text: str | None = None) -> int:
    log = open(config.log_file(role), "ab")  # noqa: SIM115 - handed to the child, closed below
    process = subprocess.Popen(
        [str(config.python), str(_ENTRY), *args],
        cwd=str(Path(config.data_dir).absolute()),
        env=_child_env(config),
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so `stop_embedded` can end uvicorn's children too
    )
    log.close()
    if stdin_text is not None:
        # Credentials travel on stdin, not argv, so that `ps` does not show them.
        process.stdin.write(stdin_text.encode())
        process.stdin.close()
    config.pid_file(role).write_text(str(process.pid))
    return process.pid


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _healthy(config: EmbeddedArgillaConfig, api_key: str) -> bool:
    try:
        response = httpx.get(f"{config.url}/api/v1/me", headers={"X-Argilla-Api-Key": api_key}, timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _check_prerequisites(config: EmbeddedArgillaConfig) -> None:
    if not config.python.exists():
        raise EmbeddedArgillaError(
            f"argilla-server's virtual environment is missing ({config.venv_dir}); "
            "create it with scripts/setup_argilla.sh (make setup does)"
        )
    redis = urlparse(config.redis_url)
    try:
        socket.create_connection((redis.hostname or "127.0.0.1", redis.port or 6379), timeout=2).close()
    except OSError as exc:
        raise EmbeddedArgillaError(
            f"Redis is not reachable at {config.redis_url} ({exc}); argilla-server needs it: start redis-server"
        ) from exc


def _bootstrap_spec(config: EmbeddedArgillaConfig, owner: ArgillaCredentials, annotator: ArgillaCredentials,
                    reviewer: ArgillaCredentials) -> str:
    """What `server_main.py serve --bootstrap` ensures before serving: workspaces, users, memberships."""
    return json.dumps(
        {
            "workspaces": {
                config.workspace: [owner.username, annotator.username],
                config.review_workspace: [owner.username, reviewer.username],
            },
            "users": [
                {"username": u.username, "password": u.password, "api_key": u.api_key, "role": u.role}
                for u in (owner, annotator, reviewer)
            ],
        }
    )


def start_embedded(config: EmbeddedArgillaConfig) -> EmbeddedArgilla:
    """Start the embedded Argilla (or find it running); see the module docstring."""
    data = Path(config.data_dir)
    (data / "tmp").mkdir(parents=True, exist_ok=True)
    owner, annotator, reviewer = _credentials(config)

    server_pid = _read_pid(config, "server")
    worker_pid = _read_pid(config, "worker")
    # A server from an earlier `up` may still be starting: give it its time before giving up on it.
    if server_pid is not None and _wait_until_healthy(config, owner.api_key, server_pid) is None:
        if config.with_worker and worker_pid is None:
            worker_pid = _spawn(config, "worker", ["worker"])
        return EmbeddedArgilla(config.url, config.workspace, owner, annotator, server_pid, worker_pid, True,
                               reviewer, config.review_workspace)
    if server_pid is not None:  # running but not answering: start over
        stop_embedded(config)
        worker_pid = None

    _check_prerequisites(config)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        if probe.connect_ex((config.host, config.port)) == 0:
            raise EmbeddedArgillaError(f"port {config.port} on {config.host} is already in use by another program")

    # argilla-server copies its UI (14 MB) into TMPDIR on every start; drop the old copies.
    shutil.rmtree(data / "tmp", ignore_errors=True)
    (data / "tmp").mkdir()
    server_pid = _spawn(
        config,
        "server",
        ["serve", "--host", config.host, "--port", str(config.port), "--bootstrap"],
        stdin_text=_bootstrap_spec(config, owner, annotator, reviewer),
    )
    if config.with_worker and worker_pid is None:
        worker_pid = _spawn(config, "worker", ["worker"])

    problem = _wait_until_healthy(config, owner.api_key, server_pid)
    if problem is not None:
        stop_embedded(config)
        raise EmbeddedArgillaError(f"argilla-server {problem}:\n{_tail(config.log_file('server'))}")
    return EmbeddedArgilla(config.url, config.workspace, owner, annotator, server_pid, worker_pid, False,
                           reviewer, config.review_workspace)


def _wait_until_healthy(config: EmbeddedArgillaConfig, api_key: str, server_pid: int) -> str | None:
    """None once the API answers; otherwise what went wrong (the process died, or time ran out)."""
    deadline = time.monotonic() + config.start_timeout_s
    while not _healthy(config, api_key):
        if not _alive(server_pid):
            return "exited during start"
        if time.monotonic() > deadline:
            return f"did not answer within {config.start_timeout_s:.0f}s"
        time.sleep(0.5)
    return None


def embedded_status(config: EmbeddedArgillaConfig) -> EmbeddedArgilla | None:
    """The running embedded Argilla, or None when its server is not running or not answering."""
    server_pid = _read_pid(config, "server")
    credentials_file = Path(config.data_dir) / "credentials.json"
    if server_pid is None or not credentials_file.exists():
        return None
    owner, annotator, reviewer = _credentials(config)
    if not _healthy(config, owner.api_key):
        return None
    return EmbeddedArgilla(
        config.url, config.workspace, owner, annotator, server_pid, _read_pid(config, "worker"), True,
        reviewer, config.review_workspace,
    )


def stop_embedded(config: EmbeddedArgillaConfig, timeout_s: float = 15.0) -> list[int]:
    """Stop the server and the worker named in the pid files; returns the pids that were stopped."""
    stopped = []
    for role in ("worker", "server"):
        pid = _read_pid(config, role)
        if pid is None:
            continue
        try:
            os.killpg(pid, signal.SIGTERM)  # the group we created with start_new_session
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        config.pid_file(role).unlink(missing_ok=True)
        stopped.append(pid)
    return stopped

