"""Settings refuse combinations that would misbehave at run time, with a message naming the variables."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


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
