"""Draft reports: a doubtful report waits here for its sender's answer, with the photos that came with it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import bindparam, delete
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.tables import OPEN_STATUSES, DraftPhoto, Hazard, ReportDraft
from models.upsert import table_of


def save_draft(
    session: Session, *, platform: str, sender_id: str, chat_id: str, campaign_id: str, payload: str,
    at: datetime, expires_at: datetime, source_msg_id: int | None = None,
) -> ReportDraft:
    row = ReportDraft(
        platform=platform, sender_id=sender_id, chat_id=chat_id, campaign_id=campaign_id, payload=payload,
        created_at=at, expires_at=expires_at, source_msg_id=source_msg_id,
    )
    session.add(row)
    session.flush()
    return row


def sender_drafts(session: Session, *, platform: str, sender_id: str, chat_id: str) -> list[ReportDraft]:
    """The sender's drafts in that chat, live or expired, oldest first (locked: one answer settles them once)."""
    return list(session.exec(
        select(ReportDraft)
        .where(ReportDraft.platform == platform, ReportDraft.sender_id == sender_id, ReportDraft.chat_id == chat_id)
        .order_by(col(ReportDraft.id))
        .with_for_update()
    ))


def has_live_draft(session: Session, *, platform: str, sender_id: str, chat_id: str, now: datetime) -> bool:
    """Whether the sender has a draft in that chat that has not expired (cheap: no lock, no payload)."""
    statement = select(ReportDraft.id).where(
        ReportDraft.platform == platform, ReportDraft.sender_id == sender_id, ReportDraft.chat_id == chat_id,
        ReportDraft.expires_at > now,
    )
    return session.exec(statement.limit(1)).first() is not None


def update_draft(session: Session, row: ReportDraft, *, payload: str) -> None:
    row.payload = payload
    session.add(row)


def drop_drafts(session: Session, rows: Iterable[ReportDraft]) -> None:
    """Delete drafts and their photos."""
    ids = [row.id for row in rows if row.id is not None]
    if not ids:
        return
    session.execute(delete(DraftPhoto).where(col(DraftPhoto.draft_id).in_(ids)))
    session.execute(delete(ReportDraft).where(col(ReportDraft.id).in_(ids)))
    session.expire_all()


def drop_stale_drafts(session: Session, *, before: datetime) -> None:
    """Delete every draft that expired before `before` (kept a while so a late 确认 hears it expired)."""
    stale = list(session.exec(select(ReportDraft).where(ReportDraft.expires_at < before)))
    drop_drafts(session, stale)


def keep_draft_photo(
    session: Session, *, draft_id: int, filename: str, content_type: str, data: bytes, source_msg_id: int | None,
) -> DraftPhoto:
    row = DraftPhoto(
        draft_id=draft_id, filename=filename[:200], content_type=content_type[:64], data=data,
        source_msg_id=source_msg_id,
    )
    session.add(row)
    session.flush()
    return row


def draft_photos(session: Session, draft_ids: Iterable[int]) -> list[DraftPhoto]:
    ids = list(draft_ids)
    if not ids:
        return []
    statement = select(DraftPhoto).where(col(DraftPhoto.draft_id).in_(ids)).order_by(col(DraftPhoto.id))
    return list(session.exec(statement))


class OpenHazard(NamedTuple):
    """What spotting a repeated report needs of an open hazard (a few columns, not the whole row; a tuple:
    a school has hundreds, read on every report)."""

    number: int
    location: str
    problem: str
    building_id: str | None


def open_hazards(session: Session, *, campaign_id: str, unit_ids: Iterable[str] | None) -> list[OpenHazard]:
    """The campaign's open hazards (整改中, 待验收) of these units (None: all), oldest first."""
    session.flush()  # what the ORM's autoflush would do: a Core statement on the connection skips it
    if unit_ids is None:
        rows = session.connection().execute(_OPEN_HAZARDS, {"the_campaign": campaign_id})
    else:
        rows = session.connection().execute(_OPEN_HAZARDS_IN, {"the_campaign": campaign_id, "units": list(unit_ids)})
    return [OpenHazard._make(row) for row in rows]


def drop_sender_drafts(session: Session, *, platform: str, sender_id: str, chat_id: str, now: datetime) -> bool:
    """Delete the sender's drafts in that chat with their photos; whether one had not expired at `now`.
    The rows are locked as sender_drafts() locks them; a report runs this, so it is one Core SELECT when
    there is nothing to drop."""
    session.flush()  # as the ORM's autoflush would: a Core statement on the connection skips it
    found = session.connection().execute(
        _SENDER_DRAFTS, {"the_platform": platform, "the_sender": sender_id, "the_chat": chat_id}
    ).all()
    if not found:
        return False
    ids = [int(row[0]) for row in found]
    session.execute(delete(DraftPhoto).where(col(DraftPhoto.draft_id).in_(ids)))
    session.execute(delete(ReportDraft).where(col(ReportDraft.id).in_(ids)))
    session.expire_all()
    return any(row[1] > now for row in found)


# Built once (Core, on the tables): every report runs them.
_HAZARD = table_of(Hazard)
_OPEN_HAZARDS = (
    sa_select(_HAZARD.c.number, _HAZARD.c.location, _HAZARD.c.problem, _HAZARD.c.building_id)
    .where(_HAZARD.c.campaign_id == bindparam("the_campaign"), _HAZARD.c.status.in_(OPEN_STATUSES))
    .order_by(_HAZARD.c.number)
)
_OPEN_HAZARDS_IN = _OPEN_HAZARDS.where(_HAZARD.c.unit_id.in_(bindparam("units", expanding=True)))
_DRAFT = table_of(ReportDraft)
_SENDER_DRAFTS = (
    sa_select(_DRAFT.c.id, _DRAFT.c.expires_at)
    .where(_DRAFT.c.platform == bindparam("the_platform"), _DRAFT.c.sender_id == bindparam("the_sender"),
           _DRAFT.c.chat_id == bindparam("the_chat"))
    .order_by(_DRAFT.c.id)
    .with_for_update()
)
