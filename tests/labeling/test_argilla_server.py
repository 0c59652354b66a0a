"""The embedded Argilla launcher: a full start/stop cycle and its clear errors."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import httpx
import pytest

from labeling.argilla import (
    EmbeddedArgillaConfig,
    EmbeddedArgillaError,
    embedded_status,
    free_port,
    start_embedded,
    stop_embedded,
)

pytestmark = pytest.mark.argilla

REPO = Path(__file__).resolve().parents[2]
VENV = REPO / "var" / "argilla-venv"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_missing_environment_and_redis_are_named(tmp_path):
    missing_venv = EmbeddedArgillaConfig(data_dir=tmp_path / "a", venv_dir=tmp_path / "no-venv", port=free_port())
    with pytest.raises(EmbeddedArgillaError, match="setup_argilla.sh"):
        start_embedded(missing_venv)
    if not VENV.exists():
        pytest.skip("argilla-server's environment is missing: run scripts/setup_argilla.sh")
    no_redis = EmbeddedArgillaConfig(data_dir=tmp_path / "b", venv_dir=VENV, port=free_port(),
                                     redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(EmbeddedArgillaError, match="Redis is not reachable"):
        start_embedded(no_redis)
    assert not (tmp_path / "b" / "server.pid").exists()


def test_port_taken_by_another_program_is_refused(tmp_path, live):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        config = EmbeddedArgillaConfig(data_dir=tmp_path, venv_dir=VENV, port=squatter.getsockname()[1],
                                       redis_url=live.config.redis_url)
        with pytest.raises(EmbeddedArgillaError, match="already in use"):
            start_embedded(config)


def test_start_stop_cycle_of_a_second_instance(tmp_path, live):
    """A separate instance (own data dir and port, same Redis db is fine without jobs): up, up
    again, down; the processes are gone afterwards and the credentials survive a restart."""
    config = EmbeddedArgillaConfig(data_dir=tmp_path, venv_dir=VENV, port=free_port(), redis_url=live.config.redis_url,
                                   with_worker=False, owner_username="lead", annotator_username="ann2")
    first = start_embedded(config)
    try:
        assert not first.already_running and first.worker_pid is None
        assert json.loads((tmp_path / "credentials.json").read_text())["annotator"]["username"] == "ann2"
        assert (tmp_path / "credentials.json").stat().st_mode & 0o077 == 0  # readable by its owner only
        me = httpx.get(f"{first.url}/api/v1/me", headers={"X-Argilla-Api-Key": first.owner.api_key}).json()
        assert (me["username"], me["role"]) == ("lead", "owner")
        token = httpx.post(f"{first.url}/api/v1/token",
                           data={"username": "ann2", "password": first.annotator.password})
        assert token.status_code == 201  # the printed annotator password logs in
        wrong = httpx.post(f"{first.url}/api/v1/token", data={"username": "ann2", "password": "not-it"})
        assert wrong.status_code == 401
    finally:
        stopped = stop_embedded(config)
    assert stopped == [first.server_pid] and not _alive(first.server_pid)
    assert embedded_status(config) is None and not (tmp_path / "server.pid").exists()
    assert stop_embedded(config) == []  # stopping twice is harmless
