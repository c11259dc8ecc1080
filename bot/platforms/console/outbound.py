"""Simulator pushes: rendered as outbox rows the /sim page reads, and "delivered" on arrival (no remote platform)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session

from bot.outbox import DeliveryResult, Draft
from handlers.messages import Reply
from models.tables import GroupRow, OutboxMessage

CHANNEL = "console"


def console_push_renderer(session: Session, group: GroupRow, replies: Sequence[Reply]) -> list[Draft]:
    """Pushes to simulator groups: kept in the outbox for the /sim page to show."""
    drafts = []
    for reply in replies:
        payload: dict[str, object] = {"text": reply.text, "mentions": list(reply.mentions)}
        if reply.file_name:
            payload["file_name"] = reply.file_name
        blob = reply.image_png or reply.file_data
        kind = "image" if reply.image_png else ("file" if reply.file_data else "text")
        drafts.append(Draft(kind=kind, payload=payload, blob=blob, channel=CHANNEL, robot=f"console:{group.id}"))
    return drafts


class ConsoleDelivery:
    """Marks console pushes sent; the /sim page reads them from the outbox."""

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        return DeliveryResult.sent()
