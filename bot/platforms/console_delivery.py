"""Delivery for simulator groups: there is no remote platform, so a push is delivered on arrival."""

from __future__ import annotations

from bot.outbox import DeliveryResult
from models.tables import OutboxMessage


class ConsoleDelivery:
    """Marks console pushes sent; the /sim page reads them from the outbox."""

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        return DeliveryResult.sent()
