"""Outbox drain: how fast the sender delivers a backlog of replies, and what each costs it.

Run from the repository root:  .venv/bin/python bench/outbox_drain.py [--rows 1500] [--latency-ms 2]
PostgreSQL when --postgres URL (or TEST_DATABASE_URL) is given (a throw-away schema), else SQLite.

N one-part replies to one chat (as `callback_throughput.py` leaves them, one robot without a rate limit) are
enqueued, then `OutboxSender.drain_once` runs until none is pending. The platform is a stand-in that answers
each delivery after `--latency-ms` (loopback to the fake WeCom is ~1-2 ms; the real WeCom is tens of ms away).
Prints replies/s (wall), CPU ms per reply (`time.process_time`, this process only: holds on a shared machine)
and statements per reply (a `before_cursor_execute` listener; an executemany counts once).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import anyio  # noqa: E402
from sqlalchemy import event  # noqa: E402
from sqlmodel import Session  # noqa: E402

from bench.callback_throughput import drop_postgres_schema, fresh_postgres_schema  # noqa: E402
from bot.outbox import DeliveryResult, OutboxSender  # noqa: E402
from models import outbox as store  # noqa: E402
from models.db import make_engine, upgrade  # noqa: E402
from models.tables import OutboxMessage  # noqa: E402

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=timezone.utc)


class Platform:
    """Answers every delivery after a fixed delay."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.delivered = 0

    async def deliver(self, message: OutboxMessage) -> DeliveryResult:
        await anyio.sleep(self.latency)
        self.delivered += 1
        return DeliveryResult.sent()


def measure(db_url: str, rows: int, latency: float) -> str:
    db = make_engine(db_url)
    upgrade(db)
    with Session(db) as session:
        for i in range(rows):
            store.enqueue(
                session, dedupe_key=f"reply:wecom:bench-{i}:0", platform="wecom", channel="edge",
                robot="wecom:aibot:bot:chat", now=T0, give_up_after=timedelta(hours=1), payload={"text": str(i)},
            )
        session.commit()
    platform = Platform(latency)
    sender = OutboxSender(db=db, deliveries={"edge": platform}, clock=lambda: T0, per_minute=1_000_000)
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(db, "before_cursor_execute", count)

    async def drain() -> None:
        while await sender.drain_once():
            pass

    cpu, wall = time.process_time(), time.perf_counter()
    anyio.run(drain)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    event.remove(db, "before_cursor_execute", count)
    db.dispose()
    assert platform.delivered == rows, (platform.delivered, rows)
    return (f"{rows} rows, latency {latency * 1000:.0f} ms: {rows / wall:7.0f} replies/s   "
            f"CPU {cpu * 1000 / rows:5.2f} ms/reply   {statements / rows:5.2f} statements/reply")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1500)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--postgres", default=os.environ.get("TEST_DATABASE_URL"))
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    if args.postgres:
        url, schema = fresh_postgres_schema(args.postgres)
        try:
            print("PostgreSQL", measure(url, args.rows, latency), flush=True)
        finally:
            drop_postgres_schema(args.postgres, schema)
    else:
        with tempfile.TemporaryDirectory(prefix="safetybot-outbox-") as tmp:
            print("SQLite    ", measure(f"sqlite:///{Path(tmp) / 'o.db'}", args.rows, latency), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
