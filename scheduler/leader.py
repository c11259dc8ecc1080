"""Only one process ticks: a PostgreSQL advisory lock, or a file lock next to a SQLite database.

The advisory lock is held by a session, so it lives on its own connection from a NullPool engine:
with a pooled engine, closing the connection would return it to the pool still holding the lock.
The claims in scheduler.ticker keep pushes exactly-once even if two processes ever tick together;
the lock just keeps the second one idle.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import IO, Protocol

from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.pool import NullPool

from models.advisory_lock import advisory_unlock, holds_advisory_lock, try_advisory_lock

log = logging.getLogger(__name__)

LOCK_NAME = "safetybot-scheduler"


def lock_key(name: str = LOCK_NAME) -> int:
    """A stable signed 64-bit advisory-lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class LeaderLock(Protocol):
    """Who may tick: try to become leader, check we still are, step down."""

    def try_acquire(self) -> bool: ...

    def still_held(self) -> bool: ...

    def release(self) -> None: ...


class PostgresLeaderLock:
    """`pg_try_advisory_lock` held on a dedicated, non-pooled connection for as long as we lead."""

    def __init__(self, engine: Engine, *, name: str = LOCK_NAME) -> None:
        # Same server as the app's engine, but no pool: close() really closes (and so unlocks).
        self._engine = create_engine(engine.url, poolclass=NullPool)
        self.key = lock_key(name)
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        """Become leader if nobody else is; True when this process holds the lock."""
        if self._connection is not None:
            return self.still_held()
        connection = self._engine.connect()
        try:
            got = try_advisory_lock(connection, self.key)
            connection.commit()  # end the implicit transaction; the session-level lock stays
        except Exception:
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self._connection = connection
        return True

    def still_held(self) -> bool:
        """False when the lock's connection died (the server then released the lock)."""
        if self._connection is None:
            return False
        try:
            # Ask for the lock itself, not just a live connection: SQLAlchemy may have reconnected
            # silently, and a new server session holds no lock.
            held = holds_advisory_lock(self._connection, self.key)
            self._connection.commit()
            if held:
                return True
            log.warning("scheduler: the leader lock is gone (the database connection was replaced)")
            self._drop()
            return False
        except Exception:
            log.warning("scheduler: lost the leader lock connection", exc_info=True)
            self._drop()
            return False

    def release(self) -> None:
        """Step down: unlock and close the connection."""
        if self._connection is None:
            return
        try:
            advisory_unlock(self._connection, self.key)
            self._connection.commit()
        except Exception:
            log.warning("scheduler: unlocking failed; closing the connection releases it", exc_info=True)
        self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:
                pass

    def dispose(self) -> None:
        """Release and drop the private engine."""
        self.release()
        self._engine.dispose()


class FileLeaderLock:
    """An exclusive `flock` on a file; the OS drops it when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Become leader if no other process holds the file lock."""
        if self._file is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        return self._file is not None

    def release(self) -> None:
        """Unlock and close the lock file."""
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def dispose(self) -> None:
        self.release()


def leader_lock_for(engine: Engine, *, data_dir: Path) -> PostgresLeaderLock | FileLeaderLock:
    """The right lock for the database: advisory lock on PostgreSQL, a file lock otherwise."""
    if engine.dialect.name == "postgresql":
        return PostgresLeaderLock(engine)
    database = engine.url.database
    if database and database != ":memory:":
        return FileLeaderLock(Path(database).with_name(Path(database).name + ".scheduler.lock"))
    return FileLeaderLock(data_dir / "scheduler.lock")
