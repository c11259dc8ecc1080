"""The queries the platform adapters need (mention targets, re-queued replies, simulator pushes): their SQL lives here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from models import outbox as outbox_store
from models.outbox import QueuedMessage
from models.queries_directory import people_by_id
from models.tables import OutboxMessage, PersonRow


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
    for person_id in person_ids:
        person = session.get(PersonRow, person_id)
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
    rows = session.exec(select(PersonRow).where(col(PersonRow.id).in_(ids))).all()
    by_id = {row.id: row for row in rows}
    return [WeComTarget(row.wecom_userid or None, row.name) for pid in ids if (row := by_id.get(pid)) is not None]
