"""API calls per platform and month: counted as they are made, summed for the budget and `outbox --usage`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from models.tables import PlatformApiCalls
from models.upsert import dialect_of, insert_on_conflict

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


def add_calls(db: Engine, *, platform: str, month: str, kind: str, calls: int) -> None:
    """Add `calls` to the month's count of `kind` calls to `platform` (a directory sync's calls, at once)."""
    if calls <= 0:
        return
    table = PlatformApiCalls.__table__  # type: ignore[attr-defined]  # SQLModel declares __table__ at run time
    with Session(db) as session:
        dialect = dialect_of(session)
        insert: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        statement = insert.values(platform=platform, month=month, kind=kind[:64], calls=calls).on_conflict_do_update(
            index_elements=["platform", "month", "kind"], set_={"calls": table.c.calls + insert.excluded.calls}
        )
        session.connection().execute(statement)
        session.commit()


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
