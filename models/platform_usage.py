"""API calls per platform and month: counted as they are made, summed for the budget and `outbox --usage`."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, tzinfo

from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from models.tables import PlatformApiCalls
from models.upsert import dialect_of, insert_on_conflict

log = logging.getLogger(__name__)

# Kinds a platform does not count against its API quota (DingTalk's robot webhooks): shown, not budgeted.
WEBHOOK_KIND_PREFIX = "webhook:"


def month_of(now: datetime, tz: tzinfo) -> str:
    """The budget month (YYYY-MM) of a moment, in the config's time zone."""
    return now.astimezone(tz).strftime("%Y-%m")


def count_call(db: Engine, *, platform: str, month: str, kind: str) -> None:
    """Add one to the month's count of `kind` calls to `platform`."""
    with Session(db) as session:
        statement = insert_on_conflict(
            dialect_of(session), PlatformApiCalls, conflict=("platform", "month", "kind"), increment=("calls",)
        )
        session.connection().execute(statement, {"platform": platform, "month": month, "kind": kind[:64], "calls": 1})
        session.commit()


def _upsert_adding(db: Engine, dialect: str) -> Any:
    table = PlatformApiCalls.__table__  # type: ignore[attr-defined]  # SQLModel declares __table__ at run time
    insert: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return insert.on_conflict_do_update(
        index_elements=["platform", "month", "kind"], set_={"calls": table.c.calls + insert.excluded.calls}
    )


class PendingCalls:
    """Calls counted in memory until `flush` writes them: one upsert row per (platform, month, kind), all in one
    transaction. Thread-safe. Its owner flushes it (bot/usage.py `CallMeter`: within a second, before the
    scheduler's budget check, and on a clean stop)."""

    def __init__(self, db: Engine) -> None:
        self.db = db
        self._counts: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # one flush at a time, so counts are written in the order taken

    def add(self, *, platform: str, month: str, kind: str, calls: int = 1) -> None:
        key = (platform, month, kind[:64])
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + calls

    def pending(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def flush(self) -> None:
        """Write what was counted; on failure the counts are kept for the next flush, and the error raised."""
        with self._writing:
            with self._lock:
                counts, self._counts = self._counts, {}
            if not counts:
                return
            try:
                with self.db.begin() as connection:
                    connection.execute(_upsert_adding(self.db, self.db.dialect.name), [
                        {"platform": platform, "month": month, "kind": kind, "calls": calls}
                        for (platform, month, kind), calls in counts.items()
                    ])
            except Exception:
                with self._lock:
                    for key, calls in counts.items():
                        self._counts[key] = self._counts.get(key, 0) + calls
                raise




def add_calls(db: Engine, *, platform: str, month: str, kind: str, calls: int) -> None:
    """Add `calls` to the month's count of `kind` calls to `platform` (a directory sync's calls, at once)."""
    if calls <= 0:
        return
    with db.begin() as connection:
        connection.execute(
            _upsert_adding(db, db.dialect.name), {"platform": platform, "month": month, "kind": kind[:64], "calls": calls}
        )


@dataclass(frozen=True, slots=True)
class UsageLine:
    """One line of a month's usage: calls to a platform of one kind."""

    platform: str
    kind: str
    calls: int

    @property
    def budgeted(self) -> bool:
        return not self.kind.startswith(WEBHOOK_KIND_PREFIX)


def usage_of_month(session: Session, month: str) -> list[UsageLine]:
    """Every platform's calls in `month` by kind, platforms and kinds in name order."""
    rows = session.exec(
        select(PlatformApiCalls.platform, PlatformApiCalls.kind, PlatformApiCalls.calls)
        .where(col(PlatformApiCalls.month) == month)
        .order_by(col(PlatformApiCalls.platform), col(PlatformApiCalls.kind))
    ).all()
    return [UsageLine(str(platform), str(kind), int(calls)) for platform, kind, calls in rows]


def budgeted_calls(session: Session, platform: str, month: str) -> int:
    """The calls to `platform` in `month` that count against its quota (all but the webhook kinds)."""
    total = session.exec(
        select(func.coalesce(func.sum(PlatformApiCalls.calls), 0)).where(
            col(PlatformApiCalls.platform) == platform, col(PlatformApiCalls.month) == month,
            col(PlatformApiCalls.kind).not_like(f"{WEBHOOK_KIND_PREFIX}%"),
        )
    ).one()
    return int(total)
