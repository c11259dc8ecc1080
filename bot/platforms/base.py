"""What every platform adapter gets, and the shared 'verify → record → ack → work later' step."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from bot.config import Config
from bot.engine import Engine
from bot.outbox import OutboxSender
from bot.secrets import Secrets
from handlers.messages import Attachment, Inbound

log = logging.getLogger(__name__)

AttachmentFetcher = Callable[[], Awaitable[tuple[Attachment, ...]]]


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

    def record(self, msg: Inbound, route: dict[str, Any]) -> int | None:
        """Record a verified message; None when the platform is retrying one we already have."""
        recorded = self.engine.record(msg, route=route)
        return recorded.inbound_id

    async def work(self, msg: Inbound, inbound_id: int, fetch: AttachmentFetcher | None = None) -> None:
        """After the acknowledgement: fetch photos, handle, and hand replies to the outbox."""
        if fetch is not None:
            try:
                attachments = await fetch()
            except Exception:
                log.warning("could not download the attachments of %s/%s", msg.platform, msg.msg_id, exc_info=True)
                attachments = ()
            if attachments:
                msg = Inbound(
                    platform=msg.platform, msg_id=msg.msg_id, chat_id=msg.chat_id, sender_id=msg.sender_id,
                    text=msg.text, received_at=msg.received_at, sender_name=msg.sender_name,
                    attachments=attachments,
                )
        await anyio.to_thread.run_sync(self.engine.process, msg, inbound_id)
        self.sender.kick()
