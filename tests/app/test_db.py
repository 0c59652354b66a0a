"""The store's transactions: writers take SQLite's write lock up front; read-only sessions take none."""

from __future__ import annotations

import threading
import time

import pytest
from sqlmodel import Session, select

from app.db import read_only, session_scope
from app.models import PolicyVersion


@pytest.fixture
def sqlite_engine(engine):
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's locking only")
    return engine


HOLD_S = 0.6


def _while_a_write_is_open(engine, read) -> float:
    """Seconds ``read()`` takes while another connection holds an uncommitted write for ``HOLD_S``."""
    started, release = threading.Event(), threading.Event()

    def writer():
        with session_scope(engine) as s:
            s.add(PolicyVersion(name="w", decision_type="ticket-routing", base_model="x"))
            s.flush()
            started.set()
            release.wait(HOLD_S)

    thread = threading.Thread(target=writer)
    thread.start()
    started.wait(10)
    t0 = time.perf_counter()
    try:
        read()
        return time.perf_counter() - t0
    finally:
        release.set()
        thread.join()


def test_a_read_only_session_does_not_wait_for_a_writer(sqlite_engine):
    def read():
        with Session(read_only(sqlite_engine)) as s:
            assert s.exec(select(PolicyVersion).where(PolicyVersion.name == "w")).first() is None  # not committed yet

    assert _while_a_write_is_open(sqlite_engine, read) < HOLD_S / 2


def test_a_writing_session_waits_for_the_writer(sqlite_engine):
    def read():
        with Session(sqlite_engine) as s:  # begins like session_scope: BEGIN IMMEDIATE
            assert s.exec(select(PolicyVersion).where(PolicyVersion.name == "w")).first() is not None

    assert _while_a_write_is_open(sqlite_engine, read) >= HOLD_S * 0.8
