"""Draft reports: a doubtful report waits here for its sender's answer, with the photos that came with it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete
from sqlmodel import Session, col, select

from models.tables import OPEN_STATUSES, DraftPhoto, Hazard, ReportDraft


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


@dataclass(frozen=True, slots=True)
class OpenHazard:
    """What spotting a repeated report needs of an open hazard (a few columns, not the whole row)."""

    number: int
    location: str
    problem: str
    building_id: str | None


def open_hazards(session: Session, *, campaign_id: str, unit_ids: Iterable[str] | None) -> list[OpenHazard]:
    """The campaign's open hazards (整改中, 待验收) of these units (None: all), oldest first."""
    statement = select(Hazard.number, Hazard.location, Hazard.problem, Hazard.building_id).where(
        col(Hazard.campaign_id) == campaign_id, col(Hazard.status).in_(OPEN_STATUSES)
    )
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(list(unit_ids)))
    return [OpenHazard(*row) for row in session.exec(statement.order_by(col(Hazard.number)))]
