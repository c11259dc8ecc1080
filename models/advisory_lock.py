"""PostgreSQL session-level advisory locks (the scheduler's leader lock, scheduler/leader.py)."""

from __future__ import annotations

from sqlalchemy import Connection, text


def try_advisory_lock(connection: Connection, key: int) -> bool:
    """Take the lock unless another session holds it (it stays with the connection's server session)."""
    return bool(connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}).scalar())


def holds_advisory_lock(connection: Connection, key: int) -> bool:
    """Whether this connection's server session holds the lock (not just whether the connection is alive:
    SQLAlchemy may have reconnected silently, and a new server session holds no lock)."""
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    return bool(
        connection.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1)"
            ),
            {"hi": unsigned >> 32, "lo": unsigned & 0xFFFFFFFF},
        ).scalar()
    )


def advisory_unlock(connection: Connection, key: int) -> None:
    connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})
