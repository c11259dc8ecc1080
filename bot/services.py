"""The one place a running bot's services are built: the web process and each handler process call it.

`build_services` builds the platforms once (`build_platforms`) and hands their push renderers, media
fetchers (recovery's: on the report path the receiving side downloads) and outbox deliveries (which render
replies as they deliver them) to the `Pushes`, `Runtime` and `OutboxSender` constructors, as immutable
mappings; nothing is filled in after construction and nothing is found through module-level
registries. The web app (bot/app.py) mounts the platforms' routes and starts their long connections;
a handler process (bot/handler_process.py) uses the runtime without a web server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import TypeVar

import httpx
from sqlalchemy import Engine as DbEngine

from bot.config import Config
from bot.engine import Engine
from bot.outbox import Delivery, OutboxSender
from bot.platforms import dingtalk, wecom
from bot.platforms.base import MediaFetcher, Platform, PlatformDeps, Runtime
from bot.platforms.console import ConsoleDelivery, ConsolePlatform, console_push_renderer
from bot.platforms.dingtalk import DingTalkPlatform
from bot.platforms.wecom import WeComPlatform
from bot.pushes import Pushes
from bot.secrets import Secrets
from bot.shared import SharedCache
from handlers.messages import Effect
from models.clock import Clock, SystemClock
from models.directory_cache import DirectoryCache
from models.db import make_engine
from scheduler.runner import SchedulerService

Notify = Callable[[Effect], None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Services:
    """Everything that holds the config in a running process (a config reload builds a new one)."""

    config: Config
    secrets: Secrets
    engine: Engine
    sender: OutboxSender
    runtime: Runtime
    scheduler: SchedulerService
    pushes: Pushes
    platforms: tuple[Platform, ...]
    wecom: WeComPlatform
    dingtalk: DingTalkPlatform
    owns_db: bool = False  # the database engine was opened here (not lent by the caller)

    async def aclose(self) -> None:
        """Close the network clients, write the platform calls counted in memory, and close the pooled database
        connections when the engine was opened here (a lent one stays as it is: its owner may go on using it)."""
        await self.wecom.ctx.meter.aclose()
        await self.dingtalk.ctx.meter.aclose()
        await self.runtime.http.aclose()
        if self.runtime.shared is not None:
            await self.runtime.shared.aclose()
        # Disposing closes the pooled connections; the engines stay usable (a later use opens new ones).
        if self.engine.journal is not self.engine.db:
            self.engine.journal.dispose()  # the recorder's own connections (SQLite), opened by this Engine
        if self.owns_db:
            self.engine.db.dispose()


def build_pushes(config: Config) -> Pushes:
    """How the scheduler's pushes are rendered on each platform, without a running bot (tests, benchmarks)."""
    return Pushes({
        "console": console_push_renderer,
        "wecom": wecom.push_drafts,
        "dingtalk": dingtalk.push_renderer(config),
    })


def build_sender(engine: Engine, config: Config, deliveries: Mapping[str, Delivery] | None = None) -> OutboxSender:
    """The outbox sender of an engine, with the given deliveries (by default the console's only)."""
    return _sender(config, engine.db, engine.now, deliveries or {"console": ConsoleDelivery()})


def _sender(
    config: Config, db: DbEngine, now: Callable[[], datetime], deliveries: Mapping[str, Delivery]
) -> OutboxSender:
    """The outbox sender with the config's rate and retry settings."""
    return OutboxSender(
        db=db,
        deliveries=deliveries,
        clock=now,
        per_minute=config.outbox.per_minute,
        window_seconds=config.outbox.window_seconds,
        retry_base_seconds=config.outbox.retry_base_seconds,
        retry_max_seconds=config.outbox.retry_max_seconds,
    )


def build_platforms(deps: PlatformDeps) -> tuple[WeComPlatform, DingTalkPlatform, ConsolePlatform]:
    """Every platform of a process, built once (callback platforms first: their routes are most of the traffic)."""
    return WeComPlatform(deps), DingTalkPlatform(deps), ConsolePlatform(deps)


def _by_name(platforms: Sequence[Platform], part: Callable[[Platform], T | None]) -> Mapping[str, T]:
    """One part of each platform that has it, by platform name (immutable)."""
    return MappingProxyType({p.name: value for p in platforms if (value := part(p)) is not None})


def _deliveries(platforms: Sequence[Platform]) -> Mapping[str, Delivery]:
    """Every platform's outbox channels; a channel name belongs to one platform only."""
    merged: dict[str, Delivery] = {}
    for platform in platforms:
        for channel, delivery in platform.deliveries.items():
            if channel in merged:
                raise ValueError(f"outbox channel {channel!r} is delivered by two platforms")
            merged[channel] = delivery
    return MappingProxyType(merged)


def build_services(
    config: Config,
    secrets: Secrets | None = None,
    clock: Clock | None = None,
    *,
    engine: Engine | None = None,
    notify: Notify | None = None,
) -> Services:
    """Build a process's services for `config`.

    `notify` hears of each handler effect after its commit; by default it wakes this process's scheduler
    (a handler process passes one that tells the web process instead). A ready-made `engine` lends its
    database, data directory, clock, secrets and notifier to the engine built here (tests hand one in for
    its clock).
    """
    secrets = secrets if secrets is not None else Secrets()
    engine_lent = engine
    clock = clock or (engine.clock if engine is not None else SystemClock(config.tz))
    db = engine.db if engine is not None else make_engine(config.database.url)
    data_dir = engine.data_dir if engine is not None else Path(config.server.data_dir)

    def now() -> datetime:
        return clock.now().astimezone(config.tz)

    redis_url = secrets.get(config.redis.url_env)
    deps = PlatformDeps(
        config=config, secrets=secrets, http=httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)), db=db,
        now=now, shared=SharedCache(redis_url) if redis_url else None, directory=DirectoryCache(db),
    )
    wecom_platform, dingtalk_platform, console = build_platforms(deps)
    platforms: tuple[Platform, ...] = (wecom_platform, dingtalk_platform, console)
    pushes = Pushes(_by_name(platforms, lambda p: p.push_renderer))
    sender = _sender(config, db, now, _deliveries(platforms))
    meters = (wecom_platform.ctx.meter, dingtalk_platform.ctx.meter)

    def flush_counts() -> None:
        for meter in meters:
            meter.flush()

    scheduler = SchedulerService(
        config=config, db=db, clock=now, data_dir=data_dir, enqueue_push=pushes.enqueue_push, on_sent=sender.kick,
        flush_counts=flush_counts,
    )
    engine = Engine(
        config=config, db=db, data_dir=data_dir, clock=clock,
        secrets=engine.secrets if engine is not None else secrets,
        notify=engine.notify if engine is not None else (notify or (lambda effect: scheduler.wake())),
        directory=deps.directory,  # one cache per process: the handlers' and the rendering's
    )
    if engine.page_links is not None:  # issue 15: the leaders' digest carries the leaders' page link
        scheduler.ticker.settings = replace(scheduler.ticker.settings, leader_page_link=engine.page_links.leader_link)
    fetchers: Mapping[str, MediaFetcher] = _by_name(platforms, lambda p: p.fetcher)
    runtime = Runtime(
        engine=engine, config=config, http=deps.http, sender=sender, secrets=secrets, fetchers=fetchers,
        shared=deps.shared,
    )
    return Services(
        config=config, secrets=secrets, engine=engine, sender=sender, runtime=runtime, scheduler=scheduler,
        pushes=pushes, platforms=platforms, wecom=wecom_platform, dingtalk=dingtalk_platform,
        owns_db=engine_lent is None,
    )
