"""The `Platform` protocol every chat platform implements, and the runtime its inbound side is bound to.

A platform is built once per process (bot/services.py) from `PlatformDeps`. Its outbound side (push
renderer, media fetcher, outbox deliveries, which render a handled message's replies when they deliver
them: bot/platforms/replies.py) is handed to the scheduler's `Pushes`, the `Runtime` and the `OutboxSender`
at their construction, as immutable mappings. Its inbound side (callback
routes, long connections) is bound to the `Runtime` with `receive(runtime)`; the web app mounts the routes
and starts the long connections (bot/app.py). The shared 'verify → record → ack → work later' steps are
the `Runtime`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

import anyio
import httpx
from sqlalchemy import Engine as DbEngine
from starlette.routing import BaseRoute

from bot.config import Config
from bot.engine import Engine
from bot.logging_setup import RedactingFilter
from bot.outbox import Delivery, OutboxSender
from bot.pushes import PushRenderer
from bot.recorder import BatchRecorder
from bot.secrets import Secrets
from bot.shared import SharedCache
from handlers.messages import Attachment, Inbound

log = logging.getLogger(__name__)

# Downloads the photos of a recorded message from what its route kept (URLs, keys, download codes).
MediaFetcher = Callable[[dict[str, Any]], Awaitable[tuple[Attachment, ...]]]
# A long-running job (a long connection, a task group for callback work): started with the app, stopped by
# cancelling it.
Service = Callable[[], Awaitable[None]]


class HandOff(Protocol):
    """Where recorded messages go to be handled when not in this process (see bot/handler_process.py)."""

    def submit(self, inbound_id: int) -> None: ...

    def pending(self) -> set[int]: ...


@dataclass
class Runtime:
    """Shared services of a running bot; each platform's inbound side is bound to it (`Platform.receive`)."""

    engine: Engine
    config: Config
    http: httpx.AsyncClient
    sender: OutboxSender
    secrets: Secrets
    # Per platform: how to fetch a recorded message's photos (the platforms' `fetcher`, given at construction).
    fetchers: Mapping[str, MediaFetcher] = field(default_factory=lambda: MappingProxyType({}))
    # Set while handler processes run: recorded messages go there instead of being handled here.
    hand_off: HandOff | None = None
    recorder: BatchRecorder | None = None
    # Redis shared by the replicas, when configured (bot/shared.py); None keeps everything per process.
    shared: SharedCache | None = None

    async def record(self, msg: Inbound, route: dict[str, Any]) -> int | None:
        """Record a verified message; None when the platform is retrying one we already have."""
        if self.recorder is None:
            self.recorder = BatchRecorder(self.engine)
        return await self.recorder.record(msg, route)

    def after_ack(self, inbound_id: int, work_here: Callable[[int], object]) -> None:
        """Hand a recorded message to the handler process, or have `work_here` start its work in this one."""
        if self.hand_off is not None:
            self.hand_off.submit(inbound_id)
        else:
            work_here(inbound_id)

    async def work(self, inbound_id: int) -> bool:
        """After the acknowledgement: fetch photos, handle, put replies in the outbox; True if there were any."""
        loaded = await anyio.to_thread.run_sync(self.engine.load, inbound_id)
        if loaded is None:  # handled meanwhile (recovery, another process)
            return False
        msg, route = loaded
        fetch = self.fetchers.get(msg.platform)
        if fetch is not None:
            try:
                attachments = await fetch(route)
            except Exception:
                log.warning("could not download the attachments of %s/%s", msg.platform, msg.msg_id, exc_info=True)
                attachments = ()
            if attachments:
                msg = replace(msg, attachments=attachments)
        replies = await anyio.to_thread.run_sync(self.engine.process, msg, inbound_id)
        if replies:
            self.sender.kick()
        return bool(replies)

    async def recover(self, *, older_than: timedelta) -> int:
        """Handle messages acknowledged but never handled (a process died), photos included."""
        ids = await anyio.to_thread.run_sync(lambda: self.engine.unhandled(older_than=older_than))
        if self.hand_off is not None:  # a live handler process still holds these
            held = self.hand_off.pending()
            ids = [inbound_id for inbound_id in ids if inbound_id not in held]
        for inbound_id in ids:
            await self.work(inbound_id)
        return len(ids)


@dataclass(frozen=True, slots=True)
class PlatformDeps:
    """What a platform is built from, once per process (bot/services.py)."""

    config: Config
    secrets: Secrets
    http: httpx.AsyncClient
    db: DbEngine  # also what replies are rendered from when they are delivered (mention targets, names)
    now: Callable[[], datetime]  # the bot's clock, zone-aware (received_at, reply validity)
    shared: SharedCache | None = None  # Redis shared by the replicas, when configured


@dataclass(frozen=True, slots=True)
class Receiving:
    """A platform's inbound side bound to a runtime: routes to mount, and services to run while leading."""

    routes: Sequence[BaseRoute] = ()
    services: Sequence[Service] = ()


class Platform(Protocol):
    """One chat platform: parse/verify inbound callbacks, fetch media, render and deliver the outbox.

    Everything but `receive` exists from construction on and never changes (a config reload goes through
    `use_config`); the web app and the handler processes build their platforms with the same factory.
    """

    @property
    def name(self) -> str:
        """The `Inbound.platform` / `GroupRow.platform` value this platform answers for."""
        ...

    @property
    def push_renderer(self) -> PushRenderer:
        """Turns a scheduler push to one of this platform's groups into outbox drafts."""
        ...

    @property
    def fetcher(self) -> MediaFetcher | None:
        """Downloads a recorded message's photos after the acknowledgement; None when photos come inline."""
        ...

    @property
    def deliveries(self) -> Mapping[str, Delivery]:
        """The outbox channels this platform delivers, by channel name; a `replies` row is rendered first."""
        ...

    def receive(self, runtime: Runtime) -> Receiving:
        """Bind the inbound side to a runtime: verify + parse callbacks into `Inbound`, record, ack, work."""
        ...

    def use_config(self, config: Config) -> None:
        """Take a reloaded config (URL allow-lists and credentials are read from it)."""
        ...


def redact_httpx_logs() -> None:
    """httpx logs every request URL at INFO: keys, tokens, signs and sessions must not reach the logs."""
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
