"""Reminder fan-out: 10,000 staff groups whose reporting reminder is due in the same minute.

Target: all 10,000 due pushes claimed, composed, in the outbox and marked sent < 10 s (one Ticker.tick).
Also printed: the re-planning every 10th tick does on top (a tick that falls on it takes that much longer).
Each group has its own school (one unit head to @-mention); console platform. A tick a minute early
materializes the due-push rows (timed separately); the timed tick at 17:00 sends them. PostgreSQL gets a
fresh schema that is dropped afterwards; SQLite a temporary file.
Run: python bench/reminder_fanout.py [--groups 10000] [--db both|postgres|sqlite]
     [--postgres-url postgresql+psycopg://root@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine as DbEngine  # noqa: E402
from sqlalchemy import func, text  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from bot.config import Config, parse_config  # noqa: E402
from bot.engine import Engine  # noqa: E402
from models.db import make_engine  # noqa: E402
from models.tables import DuePush, OutboxMessage  # noqa: E402
from bot.services import build_pushes  # noqa: E402
from scheduler.ticker import Ticker  # noqa: E402

TZ = ZoneInfo("Asia/Shanghai")
CAMPAIGN = "bench"
REPORT_DAY = date(2026, 1, 8)  # a Thursday, the 13th report day counted from 2025-09-10
NOW = datetime(2026, 1, 8, 17, 0, tzinfo=TZ)
TARGET = 10.0


def build_config(url: str, groups: int) -> Config:
    """A bureau with `groups` schools; each school has a unit head and its own staff group."""
    units: list[dict[str, Any]] = [{"id": "bureau", "name": "省教育厅"}]
    people: list[dict[str, Any]] = [{"id": "admin", "name": "管理员", "unit": "bureau", "roles": ["admin"]}]
    chats: list[dict[str, Any]] = []
    for n in range(groups):
        units.append({"id": f"s{n}", "name": f"第{n + 1}学校", "parent": "bureau"})
        people.append({"id": f"h{n}", "name": f"校长{n}", "unit": f"s{n}", "roles": ["unit_head"]})
        chats.append({"id": f"g{n}", "name": f"第{n + 1}学校安全工作群", "platform": "console", "kind": "staff",
                      "units": [f"s{n}"], "campaign": CAMPAIGN})
    return parse_config({
        "timezone": "Asia/Shanghai",
        "database": {"url": url},
        "campaigns": [{
            "id": CAMPAIGN, "name": "2025—2026学年冬春校园安全隐患排查整治",
            "start": date(2025, 9, 1), "end": date(2026, 6, 30),
            "reporting": {"every_days": 10, "first": date(2025, 9, 10), "at": "17:00"},
        }],
        "units": units,
        "people": people,
        "groups": chats,
    })


def timed(action: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = action()
    return time.perf_counter() - start, value


def measure(name: str, db: DbEngine, url: str, groups: int) -> bool:
    """Set up, materialize a minute early, then time the tick that sends every reminder; print figures."""
    t_config, config = timed(lambda: build_config(url, groups))
    engine = Engine(config=config, db=db, data_dir=Path(tempfile.gettempdir()) / "safetybot-bench")
    t_sync, _ = timed(engine.start)
    ticker = Ticker(config=config, db=db, enqueue_push=build_pushes(config).enqueue_push, name="bench")
    t_plan, early = timed(lambda: ticker.tick(NOW - timedelta(minutes=1)))
    assert not early.sent, "nothing should be due before 17:00"
    t_send, result = timed(lambda: ticker.tick(NOW))
    t_again, again = timed(lambda: ticker.materialize(NOW))  # what every 10th tick adds (nothing new to store)

    prefix = f"report_reminder:{CAMPAIGN}:"
    with Session(db) as session:
        in_outbox = session.exec(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.dedupe_key.like(f"push:{prefix}%"))  # type: ignore[attr-defined]
        ).one()
        marked = session.exec(
            select(func.count()).select_from(DuePush).where(
                DuePush.kind == "report_reminder", DuePush.state == "sent", DuePush.send_at == NOW
            )
        ).one()
    reminders = sum(key.startswith(prefix) for key in result.sent)
    ok = in_outbox == marked == reminders == groups and not result.failed and t_send < TARGET
    print(f"\n== {name} ==")
    print(f"  setup: config validated ({groups:,} groups)      {t_config:>8.2f} s")
    print(f"  setup: migrate + sync config                {t_sync:>8.2f} s")
    print(f"  tick at 16:59: materialize {early.materialized:,} rows, skip {len(early.skipped):,} missed {t_plan:>8.2f} s")
    print(f"  tick at 17:00: {reminders:,} reminders claimed, composed, in the outbox, marked sent")
    print(f"      time {t_send:.2f} s (target {TARGET:.0f} s) = {t_send / max(reminders, 1) * 1000:.2f} ms per push, "
          f"{reminders / t_send:,.0f} pushes/s  -> {'pass' if ok else 'FAIL'}")
    print(f"      outbox rows {in_outbox:,}; due_push rows sent {marked:,}; failed {len(result.failed)}")
    print(f"  re-materialize (every 10 min; {again} new rows)    {t_again:>8.2f} s")
    return ok


def run_postgres(url: str, groups: int) -> bool:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    db = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        return measure("PostgreSQL", db, url, groups)
    finally:
        db.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_sqlite(groups: int) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = make_engine(url)
        try:
            return measure("SQLite", db, url, groups)
        finally:
            db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--db", choices=("both", "postgres", "sqlite"), default="both")
    parser.add_argument("--postgres-url", default="postgresql+psycopg://root@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # the early tick's "skipped N missed pushes" warning is expected
    ok = True
    if args.db in ("both", "postgres"):
        ok &= run_postgres(args.postgres_url, args.groups)
    if args.db in ("both", "sqlite"):
        ok &= run_sqlite(args.groups)
    print(f"\n{'target met' if ok else 'target missed'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
