"""The leader's table maintenance on PostgreSQL without autovacuum (models/maintenance.py does the work)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio
from sqlalchemy import Engine

from models.maintenance import ROUND_SECONDS, Round, autovacuum_off_note, is_postgres, maintenance_round

log = logging.getLogger(__name__)


def say_if_autovacuum_is_off(db: Engine) -> None:
    """At start: one log line when the bot is to maintain its own tables (PostgreSQL with autovacuum off)."""
    try:
        note = autovacuum_off_note(db)
    except Exception:
        log.exception("could not read PostgreSQL's autovacuum setting")
        return
    if note is not None:
        log.warning("%s", note)


def run_round(db: Engine) -> Round:
    """One round, logged: what was analyzed and vacuumed, and what was busy."""
    done = maintenance_round(db)
    if done.analyzed or done.vacuumed:
        log.info("maintenance: analyzed %s; vacuumed %s", ", ".join(done.analyzed) or "none",
                 ", ".join(done.vacuumed) or "none")
    if done.skipped:
        log.info("maintenance: %s busy, left for the next round", ", ".join(done.skipped))
    return done


def maintenance_service(
    db: Engine, *, is_leader: Callable[[], bool], interval: float = ROUND_SECONDS,
) -> Callable[[], Awaitable[None]] | None:
    """A service for the app: while this process leads, a round every `interval` seconds; None on SQLite."""
    if not is_postgres(db):
        return None

    async def run() -> None:
        while True:
            if is_leader():
                try:
                    await anyio.to_thread.run_sync(run_round, db)
                except Exception:
                    log.exception("maintenance: analyzing or vacuuming failed; tried again in %g s", interval)
            await anyio.sleep(interval)

    return run
