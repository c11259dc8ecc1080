"""Counting the API calls the bot makes to each platform, per month and kind (models.platform_usage).

DingTalk counts robot OpenAPI sends, uploads and token requests against a monthly quota; WeCom's calls are
counted too so `safetybot outbox --usage` shows both. Counting never stops a send: a failed count is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, tzinfo

import anyio
from sqlalchemy import Engine

from models.platform_usage import WEBHOOK_KIND_PREFIX, count_call, month_of

log = logging.getLogger(__name__)

__all__ = ["WEBHOOK_KIND_PREFIX", "CallMeter"]


class CallMeter:
    """Adds one to the month's count of a platform's calls of a kind (in a worker thread)."""

    def __init__(self, db: Engine, tz: tzinfo, now: Callable[[], datetime]) -> None:
        self.db = db
        self.tz = tz
        self.now = now

    def count_now(self, platform: str, kind: str) -> None:
        """Count one call from synchronous code."""
        try:
            count_call(self.db, platform=platform, month=month_of(self.now(), self.tz), kind=kind)
        except Exception:  # a count must never stop a delivery
            log.warning("could not count a %s %s call", platform, kind, exc_info=True)

    async def count(self, platform: str, kind: str) -> None:
        """Count one call from async code."""
        await anyio.to_thread.run_sync(self.count_now, platform, kind)
