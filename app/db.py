"""Engines and transactions for the store.

``session_scope`` is the one way to write: it commits when the block ends and rolls back on any
exception, so a failed request or command leaves no partial writes. SQLite (the embedded default)
runs in WAL mode with ``BEGIN IMMEDIATE`` transactions: writers queue on the database lock up
front instead of failing half-way when a concurrent writer committed first.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from app.audit import audit_key, bind_audit_key
from app.settings import Settings

__all__ = ["get_engine", "make_engine", "ping", "session_scope", "upgrade_schema"]


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # Let SQLAlchemy, not the driver, decide when transactions begin (see below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # A writing transaction takes the write lock up front, so it waits for another writer instead of failing
            # with "database is locked" when it upgrades from reading. A read-only one (``read_only(engine)``) begins
            # deferred: under WAL it never takes a lock and never waits for writers.
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


READ_ONLY = "arbiter_read_only"


def read_only(engine: Engine) -> Engine:
    """The same engine for sessions that only read (an API key lookup, which policy serves): on SQLite their
    transactions take no lock, so a request's reads never queue behind another request's write."""
    return engine.execution_options(**{READ_ONLY: True})


@lru_cache(maxsize=8)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine(settings: Settings) -> Engine:
    """The process-wide engine for these settings' database (audit entries written through it are
    MACed with these settings' audit key)."""
    engine = _engine_for(settings.sqlalchemy_url)
    bind_audit_key(engine, audit_key(settings))
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session in one transaction: commit at the end, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def upgrade_schema(engine: Engine) -> None:
    """Bring the database to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def ping(engine: Engine) -> None:
    """Raises if the database cannot be reached."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
