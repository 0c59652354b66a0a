"""The Alembic migrations create exactly the schema that app/models.py declares."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import app.models  # noqa: F401


@pytest.mark.both_databases
def test_migrations_match_models(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == [], f"models and migrations disagree; generate a revision: {diff}"


def test_upgrade_is_idempotent(engine):
    from app.db import upgrade_schema

    upgrade_schema(engine)
    upgrade_schema(engine)
