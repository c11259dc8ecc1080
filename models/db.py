"""Engine creation (SQLite pragmas, PostgreSQL via psycopg 3) and schema migration."""

from __future__ import annotations

import fcntl
import logging
import os
import select
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InvalidatePoolError

from models.clock import monotonic_seconds

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

log = logging.getLogger(__name__)

# How long a SQLite writer that records callbacks (the inbound journal) waits for another's lock
# before giving up with "database is locked". Well under the platforms' 5 s: a callback that cannot be
# recorded in time is better answered 503 (the platform retries it) than left hanging until the
# platform gives up on it.
BUSY_TIMEOUT_SECONDS = 2.0
# Every other writer (handling, the outbox sender, the scheduler) keeps a long wait: nobody holds an
# HTTP request open for it, and giving up would fail a message or a delivery. Measured: with 2 s for
# everyone, the outbox sender failed with "database is locked" under a burst and the drain fell 5x.
WRITER_BUSY_TIMEOUT_SECONDS = 30.0
# PostgreSQL errors that mean "locked or timed out, try again": lock_not_available, query_canceled.
_PG_BUSY_SQLSTATES = frozenset({"55P03", "57014"})


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain postgresql:// URLs."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


POSTGRES_POOL_SIZE = 16  # connections kept open per process (see make_engine)
# A PostgreSQL connection is pinged when it comes out of the pool after waiting there longer than this
# (see _ping_when_idle); a busy handler's connections come back within milliseconds and are not.
PING_AFTER_IDLE_SECONDS = 5.0


def make_engine(
    url: str, *, journal: bool = False, ping_after_idle: float = PING_AFTER_IDLE_SECONDS, **kwargs: Any
) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout.

    `journal=True` is for the connections that record callbacks before they are acknowledged (see
    `journal_engine_for`): SQLite's `synchronous=FULL`, so a recorded callback is on disk when its
    commit returns (NORMAL syncs WAL only at checkpoints, and an OS crash or power cut could lose
    callbacks already acknowledged, which the platforms never send again), and the short busy timeout.
    The rest stays NORMAL: a handler's commit lost in a crash is redone by recovery, since the
    message's journal row then still reads "received".
    """
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        busy_timeout = BUSY_TIMEOUT_SECONDS if journal else WRITER_BUSY_TIMEOUT_SECONDS
        synchronous = "FULL" if journal else "NORMAL"
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={synchronous}")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cursor.close()

        return engine
    # The web process has up to 16 deliveries, the recorder and request threads on the database at once. A
    # connection past pool_size is closed when returned and opened again by the next checkout, and each opening
    # costs PostgreSQL a backend process: with the default 5 the reply drain spent more CPU connecting than sending.
    kwargs.setdefault("pool_size", POSTGRES_POOL_SIZE)
    kwargs.setdefault("max_overflow", POSTGRES_POOL_SIZE)
    engine = create_engine(url, **kwargs)
    _ping_when_idle(engine, ping_after_idle)
    if parsed.get_backend_name() == "postgresql":
        event.listen(engine, "connect", _synchronous_commit)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Ping a pooled connection at checkout only when it sat in the pool longer than `idle_seconds`.

    pool_pre_ping pinged every checkout: a round trip and ~0.1 ms of CPU per handled message. A connection
    returned moments ago is alive; one that waited may have been closed by a server restart (or a proxy), and
    the first message after a restart must not fail: a failed ping raises a DisconnectionError (one that
    invalidates the pool: after a restart every pooled connection is dead), and the pool checks out a fresh
    connection instead. A restart within the idle time shows as a disconnect at the first statement instead,
    which `bot.engine.Engine.process` retries once."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = monotonic_seconds()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("idle_since", None)
        if since is None or monotonic_seconds() - since <= idle_seconds:  # new, or back moments ago
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise InvalidatePoolError(f"a connection idle for over {idle_seconds:g} s failed its ping") from exc
        if not alive:
            raise InvalidatePoolError(f"a connection idle for over {idle_seconds:g} s failed its ping")


def journal_engine_for(engine: Engine) -> Engine:
    """The engine that records callbacks: on a SQLite file, its own connections made with `journal=True`.

    PostgreSQL commits synchronously on every connection (see `_synchronous_commit`), and an in-memory
    SQLite database cannot be opened twice, so for those it is the engine itself.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return engine
    return make_engine(engine.url.render_as_string(hide_password=False), journal=True)


def _synchronous_commit(dbapi_connection: Any, _record: Any) -> None:
    """Undo a server, database or role default of synchronous_commit=off (or local) for our sessions.

    With it off, PostgreSQL reports a commit before its WAL is flushed, and a crash loses callbacks
    already acknowledged. Stricter settings (remote_write, remote_apply) are kept as they are.
    """
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        setting = cursor.fetchone()[0]
        if setting in ("off", "local"):
            log.warning("PostgreSQL synchronous_commit is %r: setting it to 'on' for safetybot's sessions", setting)
            cursor.execute("SET synchronous_commit TO on")
    dbapi_connection.commit()  # the SHOW opened a transaction (psycopg is not in autocommit here)


def is_busy(exc: BaseException) -> bool:
    """Whether a database error means "locked by another writer, try again later" (not a real failure)."""
    if isinstance(exc, GateTimeout):
        return True
    original = getattr(exc, "orig", exc)
    code = getattr(original, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)  # the low byte is the primary code
    return getattr(original, "sqlstate", None) in _PG_BUSY_SQLSTATES


class WriteGate:
    """Turns between the writers of one SQLite file, processes and threads alike (a no-op elsewhere).

    SQLite has one write lock per file, and a writer that finds it taken sleeps in growing naps (up to
    100 ms) rather than queueing. Under load the handler process took the lock again between those
    naps and a callback waited seconds for its acknowledgement. An `flock` wakes a waiter as soon as
    the lock is released.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @contextmanager
    def __call__(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the gate; with a `timeout`, raise GateTimeout after waiting that long (a callback can't wait)."""
        if self.path is None:
            yield
            return
        with open(self.path, "a") as handle:  # one open file per holder, so threads exclude each other too
            if timeout is None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            elif not _flock_within(handle.fileno(), timeout):
                raise GateTimeout(f"another writer held the SQLite write gate for {timeout:g} s")
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class GateTimeout(TimeoutError):
    """The write gate stayed taken past the caller's timeout (counts as busy: see `is_busy`)."""


def _flock_within(fd: int, timeout: float) -> bool:
    """Lock `fd` exclusively, waiting at most `timeout` seconds; False if that was not enough.

    The wait is a blocking flock in a helper thread, so the lock is still handed over the moment it is
    released (polling with LOCK_NB would lose it to the blocked waiters every time). A helper whose
    caller gave up releases the lock as soon as it gets it.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        pass
    own = os.dup(fd)  # the same open file (so the same lock), and still open after the caller closes its own
    # The helper says "taken" through a pipe and the caller waits on it with poll(): a relative kernel
    # timeout, where threading's timed waits take an absolute monotonic deadline (which a shifted clock,
    # such as CI's libfaketime run, turns into a wait of 400 days).
    ready_read, ready_write = os.pipe()
    taken, gave_up, decide = threading.Event(), threading.Event(), threading.Lock()

    def wait() -> None:
        try:
            fcntl.flock(own, fcntl.LOCK_EX)
            with decide:
                if gave_up.is_set():
                    fcntl.flock(own, fcntl.LOCK_UN)
                else:
                    taken.set()
                    os.write(ready_write, b"1")
        finally:
            os.close(own)
            os.close(ready_write)

    threading.Thread(target=wait, name="write-gate-wait", daemon=True).start()
    try:
        # poll, not select: select refuses descriptors past 1024, which a busy process reaches.
        waiting = select.poll()
        waiting.register(ready_read, select.POLLIN)
        waiting.poll(max(0.0, timeout) * 1000)
        with decide:
            if taken.is_set():
                return True
            gave_up.set()
            return False
    finally:
        os.close(ready_read)


def write_gate_for(engine: Engine) -> WriteGate:
    """A gate beside a SQLite database file; PostgreSQL locks rows and needs none."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return WriteGate(None)
    return WriteGate(Path(database).with_name(Path(database).name + ".write.lock"))


def _alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection_engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to `revision` with Alembic."""
    from alembic import command

    with engine.begin() as connection:
        cfg = _alembic_config(engine)
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
