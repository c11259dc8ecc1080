"""The one place a running bot's services are built: the web process and each handler process call it.

`build_services` wires the engine, outbox sender, scheduler, platform adapters and push renderers
explicitly; nothing is found through module-level registries. The web app (bot/app.py) adds the
HTTP routes on top; a handler process (bot/handler_process.py) uses the runtime without a web server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine as DbEngine

from bot.config import Config
from bot.engine import Engine
from bot.outbox import OutboxSender
from bot.platforms import dingtalk, wecom
from bot.platforms.base import Runtime
from bot.platforms.console_delivery import ConsoleDelivery
from bot.pushes import Pushes, console_push_renderer
from bot.secrets import Secrets
from bot.shared import SharedCache
from handlers.messages import Effect
from models.clock import Clock, SystemClock
from models.db import make_engine
from scheduler.runner import SchedulerService

Notify = Callable[[Effect], None]


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
    wecom: wecom.WeComAdapter
    dingtalk: dingtalk.DingTalkAdapter

    async def aclose(self) -> None:
        """Close the network clients (the database engine stays: callers may share it)."""
        await self.runtime.http.aclose()
        if self.runtime.shared is not None:
            await self.runtime.shared.aclose()


def build_pushes(config: Config) -> Pushes:
    """How the scheduler's pushes are rendered on each platform."""
    return Pushes({
        "console": console_push_renderer,
        "wecom": wecom.push_drafts,
        "dingtalk": dingtalk.push_renderer(config),
    })


def build_sender(engine: Engine, config: Config) -> OutboxSender:
    """The outbox sender of an engine (platforms add their deliveries)."""
    return _sender(config, engine.db, engine.now)


def _sender(config: Config, db: DbEngine, now: Callable[[], datetime]) -> OutboxSender:
    """The outbox sender with the config's rate and retry settings."""
    return OutboxSender(
        db=db,
        deliveries={"console": ConsoleDelivery()},
        clock=now,
        per_minute=config.outbox.per_minute,
        window_seconds=config.outbox.window_seconds,
        retry_base_seconds=config.outbox.retry_base_seconds,
        retry_max_seconds=config.outbox.retry_max_seconds,
    )


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
    (a handler process passes one that tells the web process instead). A ready-made `engine` keeps its own
    notifier (tests hand one in for its clock).
    """
    secrets = secrets if secrets is not None else Secrets()
    clock = clock or (engine.clock if engine is not None else SystemClock(config.tz))
    db = engine.db if engine is not None else make_engine(config.database.url)
    data_dir = Path(config.server.data_dir)
    pushes = build_pushes(config)

    def now() -> datetime:
        return clock.now().astimezone(config.tz)

    sender = _sender(config, db, now)
    scheduler = SchedulerService(
        config=config, db=db, clock=now, data_dir=data_dir, enqueue_push=pushes.enqueue_push, on_sent=sender.kick
    )
    if engine is None:
        engine = Engine(
            config=config, db=db, data_dir=data_dir, clock=clock, secrets=secrets,
            notify=notify or (lambda effect: scheduler.wake()),
        )
    redis_url = secrets.get(config.redis.url_env)
    runtime = Runtime(
        engine=engine,
        config=config,
        http=httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=5.0)),
        sender=sender,
        secrets=secrets,
        shared=SharedCache(redis_url) if redis_url else None,
    )
    return Services(
        config=config, secrets=secrets, engine=engine, sender=sender, runtime=runtime, scheduler=scheduler,
        pushes=pushes, wecom=wecom.wire(runtime), dingtalk=dingtalk.wire(runtime),
    )
