"""Engine settings that decide whether an acknowledged callback survives a crash and how long a writer waits."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from models.db import (
    BUSY_TIMEOUT_SECONDS,
    WRITER_BUSY_TIMEOUT_SECONDS,
    GateTimeout,
    is_busy,
    journal_engine_for,
    make_engine,
    write_gate_for,
)


def test_sqlite_journal_commits_are_fully_synced_and_wait_at_most_the_short_busy_timeout(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    journal = journal_engine_for(engine)
    assert journal is not engine and journal.url == engine.url
    with journal.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == int(BUSY_TIMEOUT_SECONDS * 1000) <= 3000
    with engine.connect() as connection:  # handling, sending: recovery redoes a lost commit; waiting is fine
        assert connection.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == int(WRITER_BUSY_TIMEOUT_SECONDS * 1000)
    journal.dispose()
    engine.dispose()
    memory = make_engine("sqlite://")
    assert journal_engine_for(memory) is memory  # a second engine would open another, empty database


def test_a_write_while_another_process_holds_the_lock_fails_as_busy(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    engine = journal_engine_for(make_engine(f"sqlite:///{path}"))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (x INTEGER)"))
    other = sqlite3.connect(path, isolation_level=None)  # another writer, e.g. an admin's sqlite3 shell
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(OperationalError) as caught:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (1)"))
        assert is_busy(caught.value)
    finally:
        other.rollback()
        other.close()
    with engine.begin() as connection:  # free again: the same write goes through
        connection.execute(text("INSERT INTO t VALUES (1)"))
    engine.dispose()


def test_a_real_failure_is_not_busy(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(OperationalError) as caught:
        with engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table"))
    assert not is_busy(caught.value)
    engine.dispose()


def test_postgres_commits_are_synchronous_even_when_the_server_default_is_off() -> None:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests need a server; CI sets it)")
    # What `ALTER DATABASE … SET synchronous_commit = off` or postgresql.conf would give every session.
    engine = make_engine(url, connect_args={"options": "-csynchronous_commit=off"})
    with engine.connect() as connection:
        assert connection.execute(text("SHOW synchronous_commit")).scalar() == "on"
    engine.dispose()
    assert journal_engine_for(engine) is engine  # every PostgreSQL session commits synchronously
    strict = make_engine(url, connect_args={"options": "-csynchronous_commit=remote_apply"})
    with strict.connect() as connection:  # a stricter setting is left alone
        assert connection.execute(text("SHOW synchronous_commit")).scalar() == "remote_apply"
    strict.dispose()


def test_the_write_gate_gives_up_after_its_timeout_and_is_free_again_once_released(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    gate = write_gate_for(engine)
    assert gate.path is not None
    holder = open(gate.path, "a")  # another process's writer holding the gate (its own open file)
    fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
    try:
        with pytest.raises(GateTimeout) as caught:
            with gate(timeout=0.2):
                pass
        assert is_busy(caught.value)
        # A thread that sleeps, not a threading.Timer: a timed threading wait hangs under CI's shifted clock.
        threading.Thread(target=lambda: (time.sleep(0.1), fcntl.flock(holder.fileno(), fcntl.LOCK_UN))).start()
        with gate(timeout=10):  # handed over when the holder lets go, well before the timeout
            pass
    finally:
        holder.close()
    with gate(timeout=0.2):  # the waiter that gave up did not keep the gate
        pass
    engine.dispose()


def test_a_pooled_postgres_connection_is_pinged_only_after_sitting_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection back in the pool moments ago is used as it is (a ping is a round trip per message); one that
    waited longer is pinged, and one the server closed meanwhile (a restart) is replaced before it is used."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        pytest.skip("TEST_DATABASE_URL is not set (PostgreSQL tests need a server; CI sets it)")
    engine = make_engine(url, ping_after_idle=0.3, pool_size=1, max_overflow=0)
    pings: list[object] = []
    real_ping = engine.dialect.do_ping

    def counted_ping(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)
    admin = make_engine(url)
    try:
        pids = []
        for _ in range(5):  # back to back: never pinged
            with engine.connect() as connection:
                pids.append(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
        assert pings == [] and len(set(pids)) == 1
        time.sleep(0.4)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() == pids[0]
        assert len(pings) == 1
        time.sleep(0.4)
        with admin.begin() as connection:  # what a server restart does to the pooled connection
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]}).scalar_one()
        with engine.connect() as connection:  # the ping fails, and a new connection is checked out instead
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != pids[0]
        assert len(pings) == 2
    finally:
        engine.dispose()
        admin.dispose()
