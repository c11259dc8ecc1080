"""The `Platform` protocol every chat platform implements, and the runtime its inbound side is bound to.

A platform is built once per process (bot/services.py) from `PlatformDeps`. Its outbound side (push
renderer, outbox deliveries, which render a handled message's replies when they deliver them:
bot/platforms/replies.py) is handed to the scheduler's `Pushes` and the `OutboxSender` at their construction,
as immutable mappings; its media fetcher goes to the `Runtime`, for recovery only. Its inbound side (callback
routes, long connections) is bound to the `Runtime` with `receive(runtime)`; the web app mounts the routes
and starts the long connections (bot/app.py). The shared 'verify → record → ack → download photos → hand
over' steps are the `Runtime`'s; handling never calls into a platform package.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
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
from models.directory_cache import DirectoryCache

log = logging.getLogger(__name__)

# Stored photos of a message still unhandled this long after it came are dropped (it is handled without them).
STALE_ATTACHMENTS = timedelta(days=1)

# Downloads the photos of a recorded message from what its route kept (URLs, keys, download codes).
MediaFetcher = Callable[[dict[str, Any]], Awaitable[tuple[Attachment, ...]]]
# One recorded message's photo download, bound to its route by the platform that received it.
Download = Callable[[], Awaitable[tuple[Attachment, ...]]]
# Runs a job after the acknowledgement: `start(job, *args)` (a BackgroundTasks' add_task, a task group's start_soon).
Start = Callable[..., object]
# Handles a recorded message in this process (`Runtime.work`, or a platform's wrapper of it).
Work = Callable[[int], Awaitable[object]]
# Photos downloaded at once by one process's receiving side: the rest wait (the web process answers callbacks).
DOWNLOAD_SLOTS = 8
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
    # Per platform: how to fetch a recorded message's photos again (the platforms' `fetcher`, given at
    # construction), for recovery and missing photos only: on the report path the receiving side downloads.
    fetchers: Mapping[str, MediaFetcher] = field(default_factory=lambda: MappingProxyType({}))
    # Set while handler processes run: recorded messages go there instead of being handled here.
    hand_off: HandOff | None = None
    recorder: BatchRecorder | None = None
    # Redis shared by the replicas, when configured (bot/shared.py); None keeps everything per process.
    shared: SharedCache | None = None
    # Ids whose photos this process is downloading (acknowledged, not handed over yet): recovery leaves them.
    downloading: set[int] = field(default_factory=set, init=False, repr=False)
    _download_slots: anyio.CapacityLimiter | None = field(default=None, init=False, repr=False)

    async def record(self, msg: Inbound, route: dict[str, Any]) -> int | None:
        """Record a verified message; None when the platform is retrying one we already have."""
        if self.recorder is None:
            self.recorder = BatchRecorder(self.engine)
        return await self.recorder.record(msg, route)

    def after_ack(self, inbound_id: int, start: Start, work_here: Work, download: Download | None = None) -> None:
        """Hand an acknowledged message over: to a handler process, or `start(work_here, inbound_id)` here.

        With a `download` (its route names photos), `start` first runs the download in this process and
        stores the photos with the message (`with_photos`); a text message is handed over at once.
        """
        if download is not None:
            self.downloading.add(inbound_id)  # at once: recovery must not take it while the job waits to start
            start(self.with_photos, inbound_id, download, work_here)
        elif self.hand_off is not None:
            self.hand_off.submit(inbound_id)
        else:
            start(work_here, inbound_id)

    async def with_photos(self, inbound_id: int, download: Download, work_here: Work) -> None:
        """Download a recorded message's photos, store them with it, then hand it over (never raises).

        A failed download is logged and the message handled without the photo (its reply says so). When
        the photos cannot be stored, the message is not handed over: recovery downloads them again.
        """
        self.downloading.add(inbound_id)
        try:
            attachments = await self._download(inbound_id, download)
            if attachments:
                await anyio.to_thread.run_sync(self.engine.keep_attachments, inbound_id, attachments)
            if self.hand_off is not None:
                self.hand_off.submit(inbound_id)
            else:
                await work_here(inbound_id)
        except Exception:
            log.exception("inbound message %s: storing its photos or handling it failed (recovery retries)", inbound_id)
        finally:
            self.downloading.discard(inbound_id)

    async def _download(self, inbound_id: int, download: Download) -> tuple[Attachment, ...]:
        if self._download_slots is None:
            self._download_slots = anyio.CapacityLimiter(DOWNLOAD_SLOTS)
        try:
            async with self._download_slots:
                return await download()
        except Exception:
            log.warning("could not download the photos of inbound message %s", inbound_id, exc_info=True)
            return ()

    async def work(self, inbound_id: int) -> bool:
        """Handle a recorded message with the photos stored for it, put replies in the outbox; True if any.

        Calls no platform: the receiving side downloaded the photos before handing the message over.
        """
        loaded = await anyio.to_thread.run_sync(self.engine.load, inbound_id)
        if loaded is None:  # handled meanwhile (recovery, another process)
            return False
        msg, _ = loaded
        replies = await anyio.to_thread.run_sync(self.engine.process, msg, inbound_id)
        if replies:
            self.sender.kick()
        return bool(replies)

    async def recover(self, *, older_than: timedelta) -> int:
        """Handle messages acknowledged but never handled (a process died), photos included: those whose
        download never happened (the process died before it) are downloaded here, through the platform."""
        ids = await anyio.to_thread.run_sync(lambda: self.engine.unhandled(older_than=older_than))
        held = set(self.downloading)
        if self.hand_off is not None:  # a live handler process still holds these
            held |= self.hand_off.pending()
        ids = [inbound_id for inbound_id in ids if inbound_id not in held]
        for inbound_id in ids:
            await self._download_again(inbound_id)
            await self.work(inbound_id)
        await anyio.to_thread.run_sync(lambda: self.engine.drop_stale_attachments(older_than=STALE_ATTACHMENTS))
        return len(ids)

    async def _download_again(self, inbound_id: int) -> None:
        """Download and store the photos of a message that has none stored, when its route names some."""
        loaded = await anyio.to_thread.run_sync(self.engine.load, inbound_id)
        if loaded is None or loaded[0].attachments:
            return
        msg, route = loaded
        fetch = self.fetchers.get(msg.platform)
        if fetch is None:
            return
        attachments = await self._download(inbound_id, lambda: fetch(route))
        if attachments:
            await anyio.to_thread.run_sync(self.engine.keep_attachments, inbound_id, attachments)


@dataclass(frozen=True, slots=True)
class PlatformDeps:
    """What a platform is built from, once per process (bot/services.py)."""

    config: Config
    secrets: Secrets
    http: httpx.AsyncClient
    db: DbEngine  # also what replies are rendered from when they are delivered (mention targets, names)
    now: Callable[[], datetime]  # the bot's clock, zone-aware (received_at, reply validity)
    shared: SharedCache | None = None  # Redis shared by the replicas, when configured
    directory: DirectoryCache | None = None  # the process's directory cache (the engine's), for rendering replies


@dataclass(frozen=True, slots=True)
class Receiving:
    """A platform's inbound side bound to a runtime: routes to mount, and services to run while leading."""

    routes: Sequence[BaseRoute] = ()
    services: Sequence[Service] = ()


class Platform(Protocol):
    """One chat platform: parse/verify inbound callbacks and download their photos, render and deliver the outbox.

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
        """Downloads a recorded message's photos again from its stored route (recovery, photos that could not
        be written); None when photos come inline. On the report path the receiving side downloads them."""
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
