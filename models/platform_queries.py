"""The queries the platform adapters need (mention targets, re-queued replies, simulator pushes): their SQL lives here."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, or_, update
from sqlmodel import Session, col, func, select

from models import outbox as outbox_store
from models.outbox import QueuedMessage
from models.queries_directory import people_by_id
from models.tables import OutboxMessage, OutboxState, PersonRow


def wecom_userids(session: Session, person_ids: Iterable[str]) -> list[str]:
    """WeCom userids of configured people, in the order asked (person keys without a userid are skipped)."""
    ids = list(dict.fromkeys(person_ids))
    if not ids:
        return []
    people = people_by_id(session, ids)  # from the per-process directory cache when the session has it
    return [uid for pid in ids if (person := people.get(pid)) is not None and (uid := person.wecom_userid)]


@dataclass(frozen=True, slots=True)
class DingTalkTargets:
    """Whom a DingTalk message @s: staff ids, mobiles of people without one, and every name."""

    user_ids: list[str]
    mobiles: list[str]
    names: list[str]


def dingtalk_targets(session: Session, person_ids: Sequence[str]) -> DingTalkTargets:
    """The staff ids (else mobiles) and names of the people to @ on DingTalk; unknown ids are skipped."""
    targets = DingTalkTargets([], [], [])
    people = people_by_id(session, person_ids)  # from the per-process directory cache when the session has it
    for person_id in person_ids:
        person = people.get(person_id)
        if person is None:
            continue
        targets.names.append(person.name)
        if person.dingtalk_staff_id:
            targets.user_ids.append(person.dingtalk_staff_id)
        elif person.mobile:
            targets.mobiles.append(person.mobile)
    return targets


def requeue(
    db: Engine, messages: Sequence[QueuedMessage], *, dedupe_prefix: str, platform: str, group_id: str | None,
    now: datetime, give_up_after: timedelta,
) -> int:
    """Add messages in one transaction, keyed `<dedupe_prefix>:<index>` (a second call adds nothing); returns how many."""
    added = 0
    with Session(db) as session:
        for index, message in enumerate(messages):
            row_id = outbox_store.enqueue(
                session, dedupe_key=f"{dedupe_prefix}:{index}", platform=platform, channel=message.channel,
                robot=message.robot, group_id=group_id, kind=message.kind, payload=dict(message.payload),
                blob=message.blob, now=now, give_up_after=give_up_after,
            )
            added += row_id is not None
        session.commit()
    return added


def console_pushes(db: Engine, *, after: int, limit: int = 100) -> tuple[list[OutboxMessage], int]:
    """Simulator pushes (outbox rows of the console channel) after a row id, and the last such id (0 if none)."""
    with Session(db) as session:
        rows = list(session.exec(
            select(OutboxMessage)
            .where(col(OutboxMessage.channel) == "console", col(OutboxMessage.id) > after)
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        ).all())
        last_id = session.exec(select(func.max(OutboxMessage.id)).where(OutboxMessage.channel == "console")).one()
        for row in rows:
            session.expunge(row)
    return rows, int(last_id or 0)


def name_of_wecom_user(session: Session, userid: str) -> str | None:
    """The configured name of the person with this WeCom userid (who tapped a card), if any (issue 15)."""
    row = session.exec(select(PersonRow).where(col(PersonRow.wecom_userid) == userid)).first()
    return row.name if row is not None else None


def name_of_dingtalk_user(session: Session, staff_id: str) -> str | None:
    """The configured name of the person with this DingTalk staff id (who tapped a card), if any (issue 15)."""
    row = session.exec(select(PersonRow).where(col(PersonRow.dingtalk_staff_id) == staff_id)).first()
    return row.name if row is not None else None
@dataclass(frozen=True, slots=True)
class WeComTarget:
    """A person a WeCom message is about: their userid (None when unknown) and name."""

    userid: str | None
    name: str


def wecom_targets(session: Session, person_ids: Iterable[str]) -> list[WeComTarget]:
    """Userids and names of configured people, in the order asked (unknown person keys are skipped)."""
    ids = list(dict.fromkeys(person_ids))
    if not ids:
        return []
    by_id = people_by_id(session, ids)  # from the per-process directory cache when the session has it
    return [WeComTarget(row.wecom_userid or None, row.name) for pid in ids if (row := by_id.get(pid)) is not None]


# -- merged notices (WeCom webhook @-notices: bot/platforms/wecom/deliveries.py) -----------------------


def still_pending(db: Engine, row_id: int) -> bool:
    """Whether an outbox row is still to be sent (not sent inside another row's merged message meanwhile)."""
    with Session(db) as session:
        state = session.exec(select(OutboxMessage.state).where(col(OutboxMessage.id) == row_id)).first()
    return state == OutboxState.PENDING.value


@dataclass(frozen=True, slots=True)
class TakenRow:
    """A pending row leased to ride along in another row's message."""

    id: int
    payload: dict[str, Any]


def take_companions(
    db: Engine, leader: OutboxMessage, *, now: datetime, lease: timedelta, limit: int = 200
) -> list[TakenRow] | None:
    """Lease the other pending rows of the leader's robot, channel and kind, oldest first, in one transaction;
    None when the leader itself is no longer pending (another row's message carried it): then nothing is taken.

    Rows leased by nobody (or whose lease ran out) are taken, and so are rows the same sender pass claimed
    with the leader (same `last_claimed_at`): they would otherwise each be sent on their own right after.
    The leader's own state comes with the same SELECT (no statement of its own)."""
    taken_in_pass = (
        col(OutboxMessage.last_claimed_at) == leader.last_claimed_at if leader.last_claimed_at is not None else None
    )
    free = or_(col(OutboxMessage.claimed_until).is_(None), col(OutboxMessage.claimed_until) < now)
    other = or_(free, taken_in_pass) if taken_in_pass is not None else free
    with db.begin() as connection:  # Core on one connection: no ORM session for a few ids
        ids = list(connection.execute(
            select(OutboxMessage.id)
            .where(
                outbox_store.PENDING_ONLY,
                col(OutboxMessage.robot) == leader.robot,
                col(OutboxMessage.channel) == leader.channel,
                col(OutboxMessage.kind) == leader.kind,
                or_(col(OutboxMessage.id) == leader.id, and_(col(OutboxMessage.id) != leader.id, other)),
            )
            # The leader first, whatever its place: the limit must never cut it off.
            .order_by(case((col(OutboxMessage.id) == leader.id, 0), else_=1), col(OutboxMessage.id))
            .limit(limit + 1)
        ).scalars())
        if leader.id not in ids:
            return None
        ids = [row_id for row_id in ids if row_id != leader.id][:limit]
        if not ids:
            return []
        rows: Sequence[Any] = connection.execute(
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_(ids), col(OutboxMessage.state) == OutboxState.PENDING.value)
            .values(claimed_until=now + lease, last_claimed_at=now)
            .returning(col(OutboxMessage.id), col(OutboxMessage.payload))
        ).all()
    return sorted((TakenRow(int(row_id), json.loads(payload or "{}")) for row_id, payload in rows), key=lambda r: r.id)


def release(db: Engine, ids: Sequence[int]) -> None:
    """Hand leased rows back (not tried: their attempts do not count)."""
    outbox_store.update_pending(db, ids, claimed_until=None)


def mark_sent_together(db: Engine, ids: Sequence[int], *, now: datetime) -> None:
    """Mark the rows one message carried as sent, in one transaction."""
    outbox_store.update_pending(
        db, ids, state=OutboxState.SENT.value, sent_at=now, claimed_until=None, attempts=OutboxMessage.attempts + 1
    )


def fail_together(db: Engine, ids: Sequence[int], *, error: str) -> None:
    """Mark the rows a refused message carried as failed with its reason, in one transaction."""
    outbox_store.update_pending(
        db, ids, state=OutboxState.FAILED.value, claimed_until=None, attempts=OutboxMessage.attempts + 1,
        last_error=error[:2000],
    )
