"""Due-push rows of the campaign clock (scheduler/ticker.py, scheduler/alerts.py): stored once per key,
claimed, skipped and marked."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.tables import DuePush, DuePushState
from models.upsert import dialect_of, insert_on_conflict


def insert_due_pushes(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Insert due-push rows (one executemany), skipping keys already stored; how many were new."""
    if not rows:
        return 0
    statement = insert_on_conflict(dialect_of(session), DuePush, conflict=("key",), returning=("id",))
    return len(session.connection().execute(statement, list(rows)).all())


def stored_keys_due_between(session: Session, first: datetime, last: datetime) -> set[str]:
    return set(session.exec(select(DuePush.key).where(DuePush.due_at >= first, DuePush.due_at <= last)))


def pending_due_from(session: Session, kinds: Collection[str], first: datetime) -> list[DuePush]:
    """Pending rows of these kinds due from `first` on, by id."""
    return list(
        session.exec(
            select(DuePush).where(
                DuePush.state == DuePushState.PENDING.value,
                col(DuePush.kind).in_(kinds),
                DuePush.due_at >= first,
            ).order_by(col(DuePush.id))
        ).all()
    )


def skip_missed(
    session: Session, *, before: datetime, never_late: Collection[str], reason: str, claimed_by: str, now: datetime
) -> list[str]:
    """Mark pending rows whose send time is before `before` skipped (except the `never_late` kinds); their keys."""
    keys = list(
        session.exec(
            select(DuePush.key).where(
                DuePush.state == DuePushState.PENDING.value,
                DuePush.send_at < before,
                col(DuePush.kind).not_in(never_late),
            )
        )
    )
    if not keys:
        return []
    result = session.execute(
        update(DuePush)
        .where(
            col(DuePush.key).in_(keys),
            col(DuePush.state) == DuePushState.PENDING.value,
            col(DuePush.send_at) < before,
        )
        .values(state=DuePushState.SKIPPED.value, reason=reason, claimed_by=claimed_by, claimed_at=now)
        .returning(col(DuePush.key))
    )
    return [str(key) for key in result.scalars()]


def _due(
    now: datetime, excluded: Collection[int], limit: int, kinds: Collection[str] | None,
    state: DuePushState = DuePushState.PENDING,
) -> Any:
    statement = select(DuePush).where(DuePush.state == state.value, DuePush.send_at <= now)
    if kinds is not None:
        statement = statement.where(col(DuePush.kind).in_(kinds))
    if excluded:
        statement = statement.where(col(DuePush.id).not_in(excluded))
    return statement.order_by(col(DuePush.send_at), col(DuePush.id)).limit(limit)


def lock_due(
    session: Session, now: datetime, excluded: Collection[int], limit: int, kinds: Collection[str] | None,
    state: DuePushState = DuePushState.PENDING,
) -> list[DuePush]:
    """PostgreSQL: lock up to `limit` due rows (pending, or held ones whose merge time came) for this transaction
    (FOR UPDATE SKIP LOCKED), oldest first."""
    return list(session.exec(_due(now, excluded, limit, kinds, state).with_for_update(skip_locked=True)))


def due_ids(
    session: Session, now: datetime, excluded: Collection[int], limit: int, kinds: Collection[str] | None,
    state: DuePushState = DuePushState.PENDING,
) -> list[int]:
    """Ids of up to `limit` due rows, oldest first (read only)."""
    return [int(row.id) for row in session.exec(_due(now, excluded, limit, kinds, state))]


def claim_due(
    session: Session, ids: Collection[int], *, claimed_by: str, now: datetime,
    state: DuePushState = DuePushState.PENDING,
) -> set[int]:
    """Compare-and-set: mark those of `ids` still in `state` as claimed; the ids this call claimed."""
    return set(
        session.execute(
            update(DuePush)
            .where(col(DuePush.id).in_(ids), col(DuePush.state) == state.value)
            .values(claimed_by=claimed_by, claimed_at=now)
            .returning(col(DuePush.id))
        ).scalars()
    )


def due_pushes_by_id(session: Session, ids: Collection[int]) -> list[DuePush]:
    """The rows, by send time then id."""
    statement = select(DuePush).where(col(DuePush.id).in_(ids))
    return list(session.exec(statement.order_by(col(DuePush.send_at), col(DuePush.id))))


def note_due_push_error(session: Session, row_id: int, reason: str) -> None:
    session.execute(update(DuePush).where(col(DuePush.id) == row_id).values(reason=reason))


def held_pushes(session: Session) -> list[DuePush]:
    """Pushes held for their group's merged message (the DingTalk budget runs low), by merge time and group."""
    statement = select(DuePush).where(DuePush.state == DuePushState.HELD.value)
    return list(session.exec(statement.order_by(col(DuePush.send_at), col(DuePush.group_id), col(DuePush.id))))
