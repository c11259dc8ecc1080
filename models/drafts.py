"""Draft reports: a doubtful report waits here for its sender's answer, with the photos that came with it."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import ColumnElement, CompoundSelect, Select, bindparam, delete, literal, union
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from models.places import place_head, place_numbers
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


def duplicate_candidates(
    session: Session, *, campaign_id: str, unit_ids: Collection[str], location: str, building_id: str | None,
) -> list[OpenHazard]:
    """The campaign's open hazards (整改中, 待验收) of these units that may be at the place `location`, oldest first.

    Read through the place keys' indexes (models.places), so a school's other open hazards are not read: those
    naming the same numbers as `location`, and those naming none (or any, when `location` names none) that are
    in building `building_id` or whose place starts the same way. One naming other numbers than `location` is
    never at the same place for the duplicate check (二楼 is not 三楼), so nothing it could match is left out.
    """
    session.flush()  # what the ORM's autoflush would do: a Core statement on the connection skips it
    numbers, units = place_numbers(location), sorted(unit_ids)
    if not units:
        return []
    values = {
        "the_campaign": campaign_id, "the_building": building_id, "the_head": place_head(location),
        "the_numbers": numbers, **{f"unit_{i}": unit for i, unit in enumerate(units)},
    }
    statement = _candidates(bool(numbers), len(units))
    return [OpenHazard._make(row) for row in session.connection().execute(statement, values)]


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


_SAME_NUMBERS = _HAZARD.c.place_numbers == bindparam("the_numbers")
_NO_NUMBERS = _HAZARD.c.place_numbers == ""
_SAME_BUILDING = _HAZARD.c.building_id == bindparam("the_building")
_SAME_HEAD = _HAZARD.c.place_head == bindparam("the_head")


@lru_cache(maxsize=64)
def _candidates(numbered: bool, units: int) -> CompoundSelect:
    """duplicate_candidates' statement for a place naming numbers or not, among `units` units (bound one by one,
    unit_0 …: an expanding IN is rendered again on every execution, a third of this statement's CPU)."""
    h = _HAZARD.c
    in_units = h.unit_id.in_([bindparam(f"unit_{i}", type_=h.unit_id.type) for i in range(units)])
    is_open = h.status.in_([literal(status) for status in OPEN_STATUSES])

    def open_at(*where: ColumnElement[bool]) -> Select[tuple[int, str, str, str | None]]:
        """One way of finding a place's open hazards (each through one index of models.tables.Hazard)."""
        return sa_select(h.number, h.location, h.problem, h.building_id).where(
            h.campaign_id == bindparam("the_campaign"), *where, in_units, is_open
        )

    # A place naming numbers: the hazards naming the same ones, and those naming none in its building or
    # starting like it. A place naming none: any in its building or starting like it.
    if numbered:
        arms = [open_at(_SAME_NUMBERS), open_at(_SAME_BUILDING, _NO_NUMBERS), open_at(_SAME_HEAD, _NO_NUMBERS)]
    else:
        arms = [open_at(_SAME_BUILDING), open_at(_SAME_HEAD)]
    return union(*arms).order_by("number")
_DRAFT = table_of(ReportDraft)
_SENDER_DRAFTS = (
    sa_select(_DRAFT.c.id, _DRAFT.c.expires_at)
    .where(_DRAFT.c.platform == bindparam("the_platform"), _DRAFT.c.sender_id == bindparam("the_sender"),
           _DRAFT.c.chat_id == bindparam("the_chat"))
    .order_by(_DRAFT.c.id)
    .with_for_update()
)
