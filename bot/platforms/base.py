"""What every platform adapter gets, and the shared 'verify → record → ack → work later' steps."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, Protocol

import anyio
import httpx

from bot.config import Config
from bot.engine import Engine
from bot.outbox import OutboxSender
from bot.recorder import BatchRecorder
from bot.secrets import Secrets
from bot.shared import SharedCache
from handlers.messages import Attachment, Inbound

log = logging.getLogger(__name__)

# Downloads the photos of a recorded message from what its route kept (URLs, keys, download codes).
MediaFetcher = Callable[[dict[str, Any]], Awaitable[tuple[Attachment, ...]]]


class HandOff(Protocol):
    """Where recorded messages go to be handled when not in this process (see bot/handler_process.py)."""

    def submit(self, inbound_id: int) -> None: ...

    def pending(self) -> set[int]: ...


@dataclass
class Runtime:
    """Shared services of a running bot, handed to each platform adapter."""

    engine: Engine
    config: Config
    http: httpx.AsyncClient
    sender: OutboxSender
    secrets: Secrets
    # Long-running jobs (WebSocket / Stream clients) started with the app and cancelled at shutdown.
    services: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Per platform: how to fetch a recorded message's photos (registered by the adapters).
    fetchers: dict[str, MediaFetcher] = field(default_factory=dict)
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
