"""docker-compose.yml is valid, complete, refuses to start without its secrets (the .env.example as shipped
included), and publishes its ports on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _compose() -> list[str]:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.skip("neither `docker compose` nor `docker-compose` is installed (make setup installs the compose plugin)")


def _config(*extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_compose(), "-f", str(REPO / "docker-compose.yml"), *extra, "config"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)


def _filled_env(tmp_path: Path, **values: str) -> Path:
    """.env.example with every empty secret filled in, as an operator would."""
    lines = []
    for line in (REPO / ".env.example").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            value = values.get(name, value or (secrets.token_hex(32) if name == "LANGFUSE_ENCRYPTION_KEY" else secrets.token_hex(12)))
            line = f"{name}={value}"
        lines.append(line)
    path = tmp_path / "filled.env"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_compose_config_is_valid_and_complete(tmp_path):
    result = _config("--env-file", str(_filled_env(tmp_path)))
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    expected = {"arbiter-api", "arbiter-migrate", "postgres", "redis", "elasticsearch", "argilla", "argilla-worker",
                "langfuse-web", "langfuse-worker", "clickhouse", "minio"}
    assert expected <= set(services)
    for name in expected - {"arbiter-migrate", "argilla-worker", "langfuse-worker"}:
        assert "healthcheck" in services[name], f"{name} has no health check"
    api_env = services["arbiter-api"]["environment"]
    assert api_env["ARBITER_ENVIRONMENT"] == "production"
    assert api_env["ARBITER_DATABASE_URL"].startswith("postgresql+psycopg://arbiter:")
    assert services["argilla"]["environment"]["ARGILLA_ELASTICSEARCH"] == "http://elasticsearch:9200"
    assert {"postgres-data", "argilla-data", "elasticsearch-data"} <= set(config["volumes"])


def test_missing_secret_is_refused(tmp_path):
    env = tmp_path / "partial.env"
    env.write_text("\n".join(line for line in _filled_env(tmp_path).read_text().splitlines()
                             if not line.startswith("POSTGRES_PASSWORD=")))
    result = _config("--env-file", str(env))
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in (result.stderr + result.stdout)


def test_the_shipped_example_is_refused_until_its_secrets_are_filled_in():
    """Placeholders (`replace-me`, an all-zero encryption key) used to pass and could reach production; the
    example now leaves secrets empty, which `${VAR:?message}` refuses."""
    example = (REPO / ".env.example").read_text()
    assert "replace-me" not in example and not re.search(r"=0{16,}", example)
    result = _config("--env-file", str(REPO / ".env.example"))
    assert result.returncode != 0 and "set " in (result.stderr + result.stdout)


def _published(config: dict) -> list[tuple[str, str]]:
    return [(name, port.get("host_ip", "0.0.0.0")) for name, service in config["services"].items()
            for port in service.get("ports", [])]


def test_ports_listen_on_localhost_unless_told_otherwise(tmp_path):
    local = yaml.safe_load(_config("--env-file", str(_filled_env(tmp_path))).stdout)
    published = _published(local)
    assert {name for name, _ in published} >= {"arbiter-api", "argilla", "langfuse-web"}
    assert {ip for _, ip in published} == {"127.0.0.1"}
    exposed = yaml.safe_load(_config("--env-file", str(_filled_env(tmp_path, BIND_ADDRESS="0.0.0.0"))).stdout)
    assert {ip for _, ip in _published(exposed)} == {"0.0.0.0"}


def test_every_compose_setting_is_documented():
    """Each variable the stack reads from .env appears in .env.example."""
    import re

    compose = (REPO / "docker-compose.yml").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", compose))
    documented = {line.split("=", 1)[0] for line in (REPO / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}
    assert used <= documented, f"undocumented: {sorted(used - documented)}"
