"""Counting the API calls the bot makes to each platform, per month and kind (models.platform_usage).

DingTalk counts robot OpenAPI sends, uploads and token requests against a monthly quota; WeCom's calls are
counted too so `safetybot outbox --usage` shows both. Counting never stops a send: a failed count is logged.

Counts are kept in memory and written about once a second, one upsert per (platform, month, kind): one
upsert transaction per call had every delivery of a burst queue on the same counter row's lock. They are
written on a clean stop (`CallMeter.aclose`, from `Services.aclose`), and before this process reads them (the
scheduler's budget check is handed the meters' `flush`, bot/services.py). A crash loses at most
the last second's counts: the figure is a budget estimate (DingTalk's own console is the authority), the
budget warns at a share well below the quota, and a second of calls is a handful against a monthly quota of
thousands. Another process (`safetybot outbox --usage`) sees them up to a second late.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, tzinfo

import anyio
from sqlalchemy import Engine

from models.platform_usage import WEBHOOK_KIND_PREFIX, PendingCalls, month_of

log = logging.getLogger(__name__)

__all__ = ["WEBHOOK_KIND_PREFIX", "CallMeter"]

FLUSH_SECONDS = 1.0  # how long a count waits in memory at most (less a write's own time)


class CallMeter:
    """Adds one to the month's count of a platform's calls of a kind: in memory, written within a second."""

    def __init__(self, db: Engine, tz: tzinfo, now: Callable[[], datetime], *, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.db = db
        self.tz = tz
        self.now = now
        self.flush_seconds = flush_seconds
        self._pending = PendingCalls(db)
        self._timer: threading.Thread | None = None  # sleeping until it writes the counts
        self._timer_lock = threading.Lock()

    def count_now(self, platform: str, kind: str) -> None:
        """Count one call (no I/O: the write comes within `flush_seconds`, from a timer thread)."""
        self._pending.add(platform=platform, month=month_of(self.now(), self.tz), kind=kind)
        with self._timer_lock:
            if self._timer is None:
                # A thread, not the event loop: counts also come from synchronous code, and the write must not
                # wait for a loop that may be busy delivering.
                self._timer = threading.Thread(target=self._flush_soon, name="usage-counts", daemon=True)
                self._timer.start()

    async def count(self, platform: str, kind: str) -> None:
        """Count one call from async code."""
        self.count_now(platform, kind)

    def _flush_soon(self) -> None:
        # A relative sleep, not threading.Timer: a Timer waits for an absolute monotonic deadline, which a
        # moved clock (libfaketime, as in the suite's run 400 days ahead) can put out of reach for good.
        time.sleep(self.flush_seconds)
        with self._timer_lock:
            if self._timer is threading.current_thread():
                self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write the counts held in memory now (kept for the next try when the database is away)."""
        try:
            self._pending.flush()
        except Exception:  # a count must never stop a delivery
            log.warning("could not write %d counted platform calls; kept for the next try",
                        self._pending.pending(), exc_info=True)

    async def aclose(self) -> None:
        """On a clean stop: no timer left, every count written."""
        with self._timer_lock:
            self._timer = None  # a thread still asleep finds nothing left to write
        await anyio.to_thread.run_sync(self.flush)
