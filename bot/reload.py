"""Reload the config without a restart: on SIGHUP, and when the file changes (polled every few seconds).

The new file is validated first. A bad file is refused, its problems are logged as `check-config`
words them (in Chinese), and the running config stays. A good file is synced to the database and
swapped into every object of the web process that holds the config; the handler processes are
restarted gracefully with it (each finishes what it holds; nothing handed to it is lost).

What cannot change in a running process is kept from the running config and logged: the listening
address and the database. New long connections (WeCom websocket bots, DingTalk stream robots) start
with the next restart; callbacks, groups, people, units, campaigns and policies change at once.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from sqlmodel import Session

from bot.config import Config, ConfigError, load_config
from bot.sync import sync_config

log = logging.getLogger(__name__)

POLL_SECONDS = 3.0
# Engine attributes that are state, not derived from the config: a reload keeps them.
_ENGINE_STATE = frozenset({"db", "journal", "write_gate", "clock", "secrets", "data_dir", "notify"})


@dataclass
class FileState:
    """Notices a changed file by its mtime, and confirms by its content hash (a touch is not a change)."""

    path: Path
    mtime_ns: int | None = None
    digest: str | None = None

    def _stat(self) -> int | None:
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return None

    def _hash(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    def remember(self) -> None:
        """Take the file as it is now as seen."""
        self.mtime_ns, self.digest = self._stat(), self._hash()

    def changed(self) -> bool:
        """True (once) when the file's content differs from what was last seen."""
        mtime = self._stat()
        if mtime == self.mtime_ns:
            return False
        self.mtime_ns = mtime
        digest = self._hash()
        if digest == self.digest:
            return False
        self.digest = digest
        return True


@dataclass
class Holders:
    """Everything in one web process that holds the config (see bot/app.py create_app)."""

    engine: Any  # bot.engine.Engine
    runtime: Any = None  # bot.platforms.base.Runtime
    scheduler: Any = None  # scheduler.runner.SchedulerService
    sender: Any = None  # bot.outbox.OutboxSender
    pool: Any = None  # bot.handler_process.HandlerPool
    platforms: Sequence[Any] = ()  # bot.platforms.base.Platform: each takes the new config with `use_config`


def _carry_over(running: Config, new: Config) -> Config:
    """The new config, keeping what a running process cannot change (logged when the file changed it)."""
    if new.database.url != running.database.url:
        log.warning("config reload: database.url changed; it takes effect after a restart")
    server = running.server  # host and port may come from `serve --host/--port`: kept without a word
    if new.server.data_dir != server.data_dir:
        log.warning("config reload: server.data_dir changed; it takes effect after a restart")
    kept_server = new.server.model_copy(update={"host": server.host, "port": server.port, "data_dir": server.data_dir})
    return new.model_copy(update={"database": running.database, "server": kept_server})


def _long_connections(config: Config) -> set[tuple[str, str, str]]:
    return {("wecom", b.id, b.mode) for b in config.wecom.bots if b.mode == "websocket"} | {
        ("dingtalk", r.id, r.mode) for r in config.dingtalk.robots if r.mode == "stream"
    }


def swap_config(holders: Holders, config: Config) -> None:
    """Put `config` into every holder (the database is already synced)."""
    from bot.engine import Engine

    engine = holders.engine
    if _long_connections(config) != _long_connections(engine.config):
        log.warning("config reload: websocket/stream bots changed; their connections change after a restart")
    fresh = Engine(config=config, db=engine.db, data_dir=engine.data_dir, clock=engine.clock, secrets=engine.secrets)
    if fresh.journal is not engine.db:
        fresh.journal.dispose()  # never connected; the running engine keeps its own
    for name, value in vars(fresh).items():
        if name not in _ENGINE_STATE:
            setattr(engine, name, value)
    if holders.runtime is not None:
        holders.runtime.config = config
    if holders.scheduler is not None:
        _swap_scheduler(holders.scheduler, config)
    if holders.sender is not None:
        _swap_sender(holders.sender, config)
    for platform in holders.platforms:
        platform.use_config(config)
    if holders.pool is not None:
        holders.pool.use_config(config)


def _swap_scheduler(scheduler: Any, config: Config) -> None:
    from scheduler.ticker import Ticker

    scheduler.config = config
    scheduler.tz = config.tz
    old = scheduler.ticker  # the new ticker materializes the new plan at its next tick
    scheduler.ticker = Ticker(config=config, db=old.db, enqueue_push=old.enqueue_push, flush_counts=old.flush_counts)
    # Issue 15: the leaders' page link is handed in once by bot/services.py; keep it.
    from dataclasses import replace

    scheduler.ticker.settings = replace(
        scheduler.ticker.settings, leader_page_link=old.settings.leader_page_link
    )


def _swap_sender(sender: Any, config: Config) -> None:
    from datetime import timedelta

    sender.limiter.limit = config.outbox.per_minute
    sender.limiter.window = timedelta(seconds=config.outbox.window_seconds)
    sender.retry_base = config.outbox.retry_base_seconds
    sender.retry_max = config.outbox.retry_max_seconds


class ConfigReloader:
    """Loads the config file again and swaps it in, or refuses it and keeps the running one."""

    def __init__(self, path: str | Path, holders: Holders, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.path = Path(path)
        self.holders = holders
        self.poll_seconds = poll_seconds
        self.file = FileState(self.path)
        self.file.remember()
        self._requested: anyio.Event | None = None

    @property
    def config(self) -> Config:
        return self.holders.engine.config

    def reload(self, reason: str = "requested") -> bool:
        """Validate, sync and swap in the file; False (and the old config stays) when it has problems."""
        started = time.perf_counter()
        self.file.remember()
        try:
            new = load_config(self.path)
        except ConfigError as exc:
            log.error("config reload (%s): %s has %d problem(s); the running config stays",
                      reason, self.path, len(exc.records))
            for line in exc.lines("zh"):
                log.error("config: %s", line)
            return False
        new = _carry_over(self.config, new)
        try:
            with Session(self.holders.engine.db) as session:
                sync_config(session, new)
        except Exception:
            log.exception("config reload (%s): syncing to the database failed; the running config stays", reason)
            return False
        swap_config(self.holders, new)
        log.info("config reloaded in %d ms (%s)", round((time.perf_counter() - started) * 1000), reason)
        return True

    # -- in the web process's event loop ------------------------------------------------------------

    def request(self) -> None:
        """Ask for a reload soon (the SIGHUP handler; runs in the event loop)."""
        if self._requested is not None:
            self._requested.set()

    def install_signal_handler(self) -> Callable[[], None]:
        """Reload on SIGHUP; returns the function that removes the handler."""
        import asyncio

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.request)

        def remove() -> None:
            loop.remove_signal_handler(signal.SIGHUP)

        return remove

    async def run(self) -> None:
        """App service: reload when asked (SIGHUP) or when the file's content changed."""
        self._requested = anyio.Event()
        while True:
            with anyio.move_on_after(self.poll_seconds):
                await self._requested.wait()
            if self._requested.is_set():
                self._requested = anyio.Event()
                await anyio.to_thread.run_sync(self.reload, "SIGHUP")
            elif await anyio.to_thread.run_sync(self.file.changed):
                await anyio.to_thread.run_sync(self.reload, "file changed")
