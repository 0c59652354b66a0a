"""Alembic environment: runs on the connection handed over by app.db.upgrade_schema, or on the
URL from settings when invoked through the `alembic` command line."""

from alembic import context
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers the tables on SQLModel.metadata)

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    from app.db import make_engine
    from app.settings import Settings

    engine = make_engine(context.config.get_main_option("sqlalchemy.url") or Settings().sqlalchemy_url)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
