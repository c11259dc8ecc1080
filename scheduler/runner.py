"""The scheduler service in the app: become leader, then let APScheduler wake the tick every minute.

APScheduler only keeps time here (an in-memory job store with one fixed `tick` job, registered with
replace_existing=True and the school's time zone passed explicitly); what must be sent lives in the
database (scheduler.ticker). A process that is not the leader retries the lock every 15 seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import anyio
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import Engine

from models.config import Config
from models.clock import SystemClock
from scheduler.calendar import coverage_message
from scheduler.leader import FileLeaderLock, PostgresLeaderLock, leader_lock_for
from scheduler.ticker import EnqueuePush, Ticker

log = logging.getLogger(__name__)

JOB_ID = "tick"


class SchedulerService:
    """Runs the tick while this process holds the leader lock."""

    def __init__(
        self,
        *,
        config: Config,
        db: Engine,
        clock: Callable[[], datetime],
        data_dir: Path,
        enqueue_push: EnqueuePush,
        on_sent: Callable[[], None] | None = None,
        lock: PostgresLeaderLock | FileLeaderLock | None = None,
        retry_seconds: float = 15.0,
        first_tick_after: float | None = None,
        flush_counts: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self.clock = clock
        # APScheduler fires on the real clock, so job times come from it, never from a rehearsal clock.
        self.wall = SystemClock(self.tz)
        self.ticker = Ticker(config=config, db=db, enqueue_push=enqueue_push, flush_counts=flush_counts)
        self.lock = lock or leader_lock_for(db, data_dir=data_dir)
        self.on_sent = on_sent
        self.retry_seconds = retry_seconds
        # The first tick waits one interval, so a process that starts and stops at once (tests, a CLI
        # check) sends nothing; a push missed meanwhile is still within the grace window.
        self.first_tick_after = config.scheduler.tick_seconds if first_tick_after is None else first_tick_after
        self.leading = False
        self._scheduler: AsyncIOScheduler | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self) -> None:
        """Until cancelled: wait to lead, tick while leading, step down when the lock is lost."""
        log.info("scheduler: %s", coverage_message(self.clock().astimezone(self.tz).date()))
        if not self.config.scheduler.enabled:
            log.info("scheduler: disabled in [scheduler] enabled = false")
            return
        try:
            while True:
                if await anyio.to_thread.run_sync(self._try_lock):
                    await self._lead()
                await anyio.sleep(self.retry_seconds)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.lock.release)

    def _try_lock(self) -> bool:
        try:
            return self.lock.try_acquire()
        except Exception:
            log.exception("scheduler: could not try the leader lock; retrying")
            return False

    async def _lead(self) -> None:
        log.info("scheduler: this process is the leader; ticking every %ss", self.config.scheduler.tick_seconds)
        self._loop = asyncio.get_running_loop()
        scheduler = AsyncIOScheduler(timezone=self.tz)  # never the machine's zone
        scheduler.add_job(
            self._tick_job, "interval", seconds=self.config.scheduler.tick_seconds, id=JOB_ID,
            replace_existing=True, next_run_time=self.wall.now() + timedelta(seconds=self.first_tick_after),
            coalesce=True, max_instances=1,
            misfire_grace_time=self.config.scheduler.tick_seconds,
        )
        scheduler.start()
        self._scheduler, self.leading = scheduler, True
        try:
            while await anyio.to_thread.run_sync(self.lock.still_held):
                await anyio.sleep(self.retry_seconds)
            log.warning("scheduler: lost the leader lock; stopped ticking")
        finally:
            self._scheduler, self.leading = None, False
            scheduler.shutdown(wait=False)

    async def _tick_job(self) -> None:
        now = self.clock()
        try:
            result = await anyio.to_thread.run_sync(self.ticker.tick, now)
        except Exception:
            log.exception("scheduler: tick failed")
            return
        if result.sent and self.on_sent is not None:
            self.on_sent()

    def wake(self) -> None:
        """Tick within a second (e.g. a 重大 hazard was just reported); callable from any thread."""
        loop, scheduler = self._loop, self._scheduler
        if loop is None or scheduler is None:
            return

        def soon() -> None:
            # A second from now: a burst of reports (each asking after its commit) shares one tick.
            job = scheduler.get_job(JOB_ID)
            if job is not None:
                job.modify(next_run_time=self.wall.now() + timedelta(seconds=1))

        loop.call_soon_threadsafe(soon)
