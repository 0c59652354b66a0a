"""Settings refuse combinations that would misbehave at run time, with a message naming the variables."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_production_refuses_the_default_secret_and_sqlite():
    with pytest.raises(ValidationError, match="ARBITER_SECRET_KEY"):
        Settings(environment="production", database_url="postgresql+psycopg://db/arbiter")
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(environment="production", secret_key="s" * 40, database_url="sqlite:///x.db")
    ok = Settings(environment="production", secret_key="s" * 40, database_url="postgresql+psycopg://db/arbiter")
    assert ok.sqlalchemy_url.startswith("postgresql")


def test_review_and_preference_datasets_must_differ():
    with pytest.raises(ValidationError, match="ARBITER_ARGILLA_REVIEW_DATASET"):
        Settings(argilla_dataset="shared", argilla_review_dataset="shared")
    assert Settings(argilla_dataset="a", argilla_review_dataset="b").argilla_review_dataset == "b"


def test_production_requires_long_secrets():
    with pytest.raises(ValidationError, match="ARBITER_SECRET_KEY must be at least 32 characters"):
        Settings(environment="production", secret_key="x", database_url="postgresql+psycopg://db/arbiter")
    with pytest.raises(ValidationError, match="ARBITER_AUDIT_KEY must be at least 32 characters"):
        Settings(environment="production", secret_key="s" * 32, audit_key="short", database_url="postgresql+psycopg://db/arbiter")
    assert Settings(environment="local", secret_key="x").secret_key == "x"  # local use may keep anything


SECRET_TAIL = "sk-live-tail-0123456789"


@pytest.mark.parametrize("env,named", [
    # a secret too short, and the OpenAI key (the last setting pydantic showed as input_value) set
    ({"ARBITER_SECRET_KEY": "pw-secret-42", "ARBITER_OPENAI_API_KEY": SECRET_TAIL,
      "ARBITER_DATABASE_URL": "postgresql://arbiter:pw-secret-42@127.0.0.1/x"}, ["ARBITER_SECRET_KEY"]),
    # every problem at once: the default secret, SQLite
    ({"ARBITER_OPENAI_API_KEY": SECRET_TAIL}, ["ARBITER_SECRET_KEY", "ARBITER_DATABASE_URL"]),
    # a field that does not parse, beside a secret
    ({"ARBITER_SECRET_KEY": "pw-secret-42" * 4, "ARBITER_PORT": "pw-secret-42",
      "ARBITER_DATABASE_URL": "postgresql://arbiter:pw-secret-42@127.0.0.1/x"}, ["ARBITER_PORT"]),
], ids=["short-secret", "defaults", "unparsable"])
def test_refused_start_up_prints_one_line_without_values(tmp_path, env, named):
    """The `arbiter` entry point, run as a process in production: one line naming the settings, exit 2,
    no traceback, and no part of any value (before, pydantic's traceback showed `input_value=...` with
    the tail of the last setting)."""
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARBITER_")}
    result = subprocess.run([sys.executable, "-c", "from app.cli.main import main; main()", "keys", "list"],
                            env={**clean, "ARBITER_ENVIRONMENT": "production", **env,
                                 "PYTHONPATH": str(REPO)}, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output and "input_value" not in output
    for secret in ("pw-secret-42", "sk-live", "0123456789", "arbiter:"):
        assert secret not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refused settings: "), output
    for name in named:
        assert name in lines[0]
