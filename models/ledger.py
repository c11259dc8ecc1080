"""Ledger operations and SQL aggregates shared by handlers, the scheduler and exports."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import and_, bindparam, case, delete, func, insert, literal_column, or_, true, update
from sqlmodel import Session, select
from sqlalchemy import ColumnElement, CursorResult
from sqlalchemy import select as sa_select  # sqlmodel's select is typed for up to 4 columns
from sqlalchemy.orm import Mapped
from sqlmodel import col

from models.ids import stored_id
from models.upsert import dialect_of, insert_on_conflict, table_of

from models.directory_cache import cached as cached_directory
from models.places import place_keys
from models.tables import (
    OPEN_STATUSES,
    AttachmentFile,
    CampaignRow,
    Hazard,
    HazardCounter,
    HazardEvent,
    HazardStatus,
    InboundMessage,
    PendingPhoto,
    UnitRow,
)

log = logging.getLogger(__name__)

# A photo whose file could not be written is fetched again from its platform: soon at first, then
# less often. After two days the platforms' download codes and links have long expired.
PHOTO_RETRY_MIN = timedelta(seconds=15)
PHOTO_RETRY_MAX = timedelta(hours=1)
PHOTO_RETRY_FOR = timedelta(days=2)


def next_hazard_number(session: Session, campaign_id: str, school_id: str | None = None) -> int:
    """Atomically take the next 序号 of a school in a campaign (of the whole campaign when no school is given);
    safe with concurrent writers. A school's first number follows the highest it already has."""
    if school_id is not None:
        return _next_school_number(session, campaign_id, school_id)
    # Core on the session's connection, built once: every report runs it (the ORM's bulk UPDATE cost more
    # CPU than the rest of the report's statements); nothing reads a campaign row's next_number.
    result = session.connection().execute(_NEXT_NUMBER, {"campaign_id": campaign_id})
    return int(result.scalar_one()) - 1


def _next_school_number(session: Session, campaign_id: str, school_id: str) -> int:
    connection = session.connection()
    taken = connection.execute(
        _NEXT_SCHOOL_NUMBER, {"b_campaign": campaign_id, "b_school": school_id}
    ).scalar_one_or_none()
    if taken is None:  # the school's first number in this campaign: after the highest it has (older hazards)
        highest = session.exec(
            select(func.max(Hazard.number)).where(Hazard.campaign_id == campaign_id, Hazard.school_id == school_id)
        ).one()
        # A concurrent first number conflicts on the counter's key and is counted up instead.
        first = insert_on_conflict(
            dialect_of(session), HazardCounter, conflict=("campaign_id", "school_id"), increment=("next_number",),
            returning=("next_number",),
        )
        taken = connection.execute(
            first, {"campaign_id": campaign_id, "school_id": school_id, "next_number": (highest or 0) + 2}
        ).scalar_one()
    return int(taken) - 1


_CAMPAIGN = table_of(CampaignRow)
_NEXT_NUMBER = (
    update(_CAMPAIGN)
    .where(_CAMPAIGN.c.id == bindparam("campaign_id"))
    .values(next_number=_CAMPAIGN.c.next_number + 1)
    .returning(_CAMPAIGN.c.next_number)
)
_COUNTER = table_of(HazardCounter)
_NEXT_SCHOOL_NUMBER = (
    update(_COUNTER)
    # Not named after the columns: an UPDATE takes parameters named like its columns as SET values.
    .where(_COUNTER.c.campaign_id == bindparam("b_campaign"), _COUNTER.c.school_id == bindparam("b_school"))
    .values(next_number=_COUNTER.c.next_number + 1)
    .returning(_COUNTER.c.next_number)
)


def hazard_by_number(session: Session, campaign_id: str, number: int) -> Hazard | None:
    """The first hazard numbered `number` in the campaign (any school); see hazards_by_number."""
    return session.exec(
        select(Hazard).where(col(Hazard.campaign_id) == campaign_id, col(Hazard.number) == number).order_by(col(Hazard.id))
    ).first()


def hazards_by_number(session: Session, campaign_id: str, number: int) -> list[Hazard]:
    """Every hazard numbered `number` in the campaign: one per school (numbers are per school)."""
    return list(session.exec(
        select(Hazard).where(col(Hazard.campaign_id) == campaign_id, col(Hazard.number) == number).order_by(col(Hazard.id))
    ))


def assign_hazard_schools(session: Session, schools: Iterable[str]) -> int:
    """Give hazards filed before per-school numbers their school (they keep their numbers, unique in their
    campaign), and start each school's counter after its highest number. Returns how many were assigned."""
    school_ids = set(schools)
    legacy = list(session.exec(select(Hazard).where(Hazard.school_id == None)))  # noqa: E711
    if not legacy:
        return 0
    of_unit: dict[str, str] = {}
    for hazard in legacy:
        if hazard.unit_id not in of_unit:
            of_unit[hazard.unit_id] = school_of(session, hazard.unit_id, school_ids)
        hazard.school_id = of_unit[hazard.unit_id]
        session.add(hazard)
    session.flush()
    highest = session.execute(
        select(Hazard.campaign_id, Hazard.school_id, func.max(Hazard.number))
        .where(Hazard.school_id != None)  # noqa: E711
        .group_by(col(Hazard.campaign_id), col(Hazard.school_id))
    ).all()
    for campaign_id, school_id, number in highest:
        counter = session.get(HazardCounter, (campaign_id, school_id))
        if counter is None:
            session.add(HazardCounter(campaign_id=campaign_id, school_id=school_id, next_number=number + 1))
        elif counter.next_number <= number:
            counter.next_number = number + 1
            session.add(counter)
    return len(legacy)


def record_event(
    session: Session,
    *,
    hazard: Hazard,
    actor_id: str,
    action: str,
    at: datetime,
    detail: str = "",
    to_status: str | None = None,
) -> HazardEvent:
    """Append an audit event, moving the hazard to `to_status` when given."""
    event = HazardEvent(
        hazard_id=stored_id(hazard),
        at=at,
        actor_id=actor_id,
        action=action,
        from_status=hazard.status,
        to_status=to_status or hazard.status,
        detail=detail,
    )
    if to_status is not None:
        hazard.status = to_status
    session.add(event)
    session.add(hazard)
    session.flush()
    return event


@dataclass(frozen=True, slots=True)
class NewHazard:
    """A hazard about to be filed from a report: the values of its ledger row (`file_hazard`)."""

    campaign_id: str
    number: int
    school_id: str | None
    unit_id: str
    location: str
    check_item: str
    problem: str
    measure: str
    responsible_name: str
    responsible_id: str | None
    reporter_id: str
    category: str
    level: str
    building_id: str | None
    immediate: bool
    closed_building: bool
    deadline: date
    status: str
    found_at: datetime
    remark: str
    source_msg_id: int | None
    origin: str
    origin_date: date | None
    missed_by_school: bool


def file_hazard(session: Session, hazard: NewHazard, *, detail: str) -> tuple[int, int]:
    """Insert the hazard and its report event (by its reporter, at found_at); returns (hazard id, event id).

    Prebuilt Core inserts, not an ORM row: every report runs them, and building and flushing the SQLModel
    rows cost more CPU than the rest of filing. The hazard is not in the session's identity map (it is read
    back from the database when asked for)."""
    session.flush()  # what the ORM's autoflush would do: a Core statement on the connection skips it
    connection = session.connection()
    values = {name: getattr(hazard, name) for name in _NEW_HAZARD_FIELDS}
    hazard_id = int(connection.execute(_INSERT_HAZARD, {**values, **place_keys(hazard.location)}).scalar_one())
    event_id = connection.execute(_INSERT_EVENT, {
        "hazard_id": hazard_id, "at": hazard.found_at, "actor_id": hazard.reporter_id, "action": "report",
        "from_status": hazard.status, "to_status": hazard.status, "detail": detail,
    }).scalar_one()
    return hazard_id, int(event_id)


_NEW_HAZARD_FIELDS = NewHazard.__slots__
_HAZARD = table_of(Hazard)
_INSERT_HAZARD = insert(_HAZARD).returning(_HAZARD.c.id)
_EVENT = table_of(HazardEvent)
_INSERT_EVENT = insert(_EVENT).returning(_EVENT.c.id)


def file_numbered_hazard(session: Session, hazard: NewHazard, *, detail: str) -> tuple[NewHazard, int, int]:
    """Take the school's next number and file the hazard with it and its report event: (the hazard as filed,
    hazard id, event id). `hazard.number` is ignored.

    The number's counter row stays locked until COMMIT, so concurrent reports of a school wait from here on:
    the caller runs everything else first and commits soon after. On PostgreSQL the counter UPDATE and both
    inserts are one statement (data-modifying CTEs); a school's first number, and SQLite, go one by one."""
    if hazard.school_id is not None and dialect_of(session) == "postgresql":
        session.flush()  # what the ORM's autoflush would do: a Core statement on the connection skips it
        values = {f"h_{name}": getattr(hazard, name) for name in _NEW_HAZARD_FIELDS if name != "number"}
        values.update((f"h_{name}", value) for name, value in place_keys(hazard.location).items())
        row = session.connection().execute(_NUMBER_AND_FILE, {
            **values, "b_campaign": hazard.campaign_id, "b_school": hazard.school_id, "h_completion": "", "e_at": hazard.found_at, "e_actor": hazard.reporter_id, "e_action": "report",
            "e_status": hazard.status, "e_detail": detail,
        }).first()
        if row is not None:
            return replace(hazard, number=int(row[0])), int(row[1]), int(row[2])
    # SQLite, the whole campaign's numbers, or the school's first number (no counter row yet)
    numbered = replace(hazard, number=next_hazard_number(session, hazard.campaign_id, hazard.school_id))
    hazard_id, event_id = file_hazard(session, numbered, detail=detail)
    return numbered, hazard_id, event_id


def _number_and_file() -> Any:
    """counter UPDATE … RETURNING → INSERT hazard … RETURNING → INSERT hazard_event: no row without a counter."""
    h, e = _HAZARD.c, _EVENT.c
    taken = (
        update(_COUNTER)
        .where(_COUNTER.c.campaign_id == bindparam("b_campaign"), _COUNTER.c.school_id == bindparam("b_school"))
        # No anonymous (literal) parameters in this statement: SQLAlchemy's cache lost their values in nested CTEs.
        .values(next_number=_COUNTER.c.next_number + literal_column("1"))
        .returning((_COUNTER.c.next_number - literal_column("1")).label("number"))
        .cte("taken")
    )
    names = [name for name in _NEW_HAZARD_FIELDS if name != "number"] + ["place_numbers", "place_head", "completion"]
    filed = (
        insert(_HAZARD)
        .from_select(
            [*names, "number"],
            # h_…, not the column names: the counter UPDATE would take campaign_id and school_id as SET values
            sa_select(*(bindparam(f"h_{name}", type_=h[name].type) for name in names), taken.c.number),
            include_defaults=False,
        )
        .returning(h.id, h.number)
        .cte("filed")
    )
    event = (
        insert(_EVENT)
        .from_select(
            ["hazard_id", "at", "actor_id", "action", "from_status", "to_status", "detail"],
            sa_select(
                filed.c.id, bindparam("e_at", type_=e.at.type), bindparam("e_actor", type_=e.actor_id.type),
                bindparam("e_action", type_=e.action.type), bindparam("e_status", type_=e.from_status.type),
                bindparam("e_status", type_=e.to_status.type), bindparam("e_detail", type_=e.detail.type),
            ),
        )
        .returning(e.id)
        .cte("event")
    )
    return sa_select(filed.c.number, filed.c.id, event.c.id).select_from(filed.join(event, true()))


_NUMBER_AND_FILE = _number_and_file()  # built once: every report on PostgreSQL runs it


def hazard_events(session: Session, hazard_id: int) -> list[HazardEvent]:
    return list(
        session.exec(select(HazardEvent).where(HazardEvent.hazard_id == hazard_id).order_by(col(HazardEvent.id)))
    )


def store_photo(
    session: Session,
    *,
    data_dir: Path,
    hazard_id: int,
    event_id: int | None,
    filename: str,
    content_type: str,
    data: bytes,
    at: datetime,
    source_msg_id: int | None = None,
) -> AttachmentFile:
    """Keep a photo once under data_dir/photos by its SHA-256 and link it to a hazard.

    A file that cannot be written (a full disk, a read-only or failing volume) does not fail the report:
    the row is kept, marked missing, and due for a retry that fetches it again from `source_msg_id`.
    """
    digest = hashlib.sha256(data).hexdigest()
    reason = ""
    try:
        write_photo_file(data_dir, digest, data)
    except OSError as exc:
        reason = errno.errorcode.get(exc.errno or 0, "OSError")
        log.warning("photo %s of hazard %s not written (%s): kept as missing", digest[:12], hazard_id, reason)
    row = AttachmentFile(
        hazard_id=hazard_id,
        event_id=event_id,
        sha256=digest,
        filename=filename[:200],
        content_type=content_type[:64],
        size=len(data),
        created_at=at,
        source_msg_id=source_msg_id,
        missing_since=at if reason else None,
        missing_reason=reason,
        retry_at=at if reason and source_msg_id is not None else None,
    )
    session.add(row)
    session.flush()
    return row


def write_photo_file(data_dir: Path, digest: str, data: bytes) -> None:
    """Write the photo's file, synced, through a temporary file that is removed if anything fails."""
    path = photo_path(data_dir, digest)
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{digest[:16]}.", suffix=".tmp")
    try:
        try:
            remaining = memoryview(data)
            while remaining:
                remaining = remaining[os.write(handle, remaining):]
            os.fsync(handle)  # on disk before the database row that points at it is committed
        finally:
            os.close(handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def photos_to_fetch_again(
    session: Session, *, now: datetime, limit: int = 100
) -> list[tuple[AttachmentFile, InboundMessage | None]]:
    """Missing photos due for another attempt, each with the message it came with (its route says how)."""
    statement = (
        select(AttachmentFile, InboundMessage)
        .join(InboundMessage, col(InboundMessage.id) == AttachmentFile.source_msg_id, isouter=True)
        .where(col(AttachmentFile.retry_at) <= now)
        .order_by(col(AttachmentFile.retry_at))
        .limit(limit)
    )
    return [(row, message) for row, message in session.exec(statement)]


def mark_photo_written(session: Session, row: AttachmentFile) -> None:
    row.missing_since, row.missing_reason, row.retry_at = None, "", None
    session.add(row)


def mark_photo_still_missing(
    session: Session, row: AttachmentFile, *, now: datetime, reason: str, give_up: bool = False
) -> None:
    """Try again later, less often the longer it has been missing; stop after PHOTO_RETRY_FOR (or now)."""
    missing_for = now - (row.missing_since or now)
    row.missing_reason = reason[:32]
    if give_up or missing_for >= PHOTO_RETRY_FOR:
        row.retry_at = None
    else:
        row.retry_at = now + min(max(missing_for / 2, PHOTO_RETRY_MIN), PHOTO_RETRY_MAX)
    session.add(row)


def photo_path(data_dir: Path, sha256: str) -> Path:
    return data_dir / "photos" / sha256[:2] / sha256


def subtrees(session: Session, roots: Iterable[str]) -> dict[str, set[str]]:
    """Each root with every unit id under it (and itself), for many roots in one query per tree level."""
    snapshot = cached_directory(session)
    if snapshot is not None:
        return snapshot.subtrees(roots)
    found = {root: {root} for root in roots}
    # Walk down level by level through the parent_id index instead of loading the whole unit table
    # (a province has 10,000s of units; a school's tree is two levels deep).
    children: dict[str, list[str]] = {}
    seen = set(found)
    frontier = set(found)
    while frontier:
        rows = session.execute(
            select(UnitRow.id, UnitRow.parent_id).where(col(UnitRow.parent_id).in_(frontier))
        ).all()
        frontier = set()
        for unit_id, parent_id in rows:
            children.setdefault(parent_id, []).append(unit_id)
            if unit_id not in seen:  # a cycle in bad data still ends
                seen.add(unit_id)
                frontier.add(unit_id)
    for root, tree in found.items():
        stack = list(children.get(root, ()))
        while stack:
            unit_id = stack.pop()
            if unit_id not in tree:
                tree.add(unit_id)
                stack.extend(children.get(unit_id, ()))
    return found


def descendants(session: Session, roots: Iterable[str]) -> set[str]:
    """Every unit id under (and including) the given roots."""
    return set().union(*subtrees(session, roots).values())


def parent_chains(session: Session, unit_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each unit with the units above it, itself first and the top last (one query per tree level)."""
    snapshot = cached_directory(session)
    if snapshot is not None:
        return snapshot.parent_chains(unit_ids)
    wanted = set(unit_ids)
    parents: dict[str, str | None] = {}
    frontier = set(wanted)
    while frontier:
        statement = select(UnitRow.id, UnitRow.parent_id).where(col(UnitRow.id).in_(frontier))
        rows = session.execute(statement).all()
        for unit_id, parent_id in rows:
            parents[unit_id] = parent_id
        frontier = {parent for _, parent in rows if parent is not None and parent not in parents}
    chains: dict[str, list[str]] = {}
    for unit_id in wanted:
        chain = [unit_id]
        while (parent := parents.get(chain[-1])) is not None and parent not in chain:  # bad data may loop
            chain.append(parent)
        chains[unit_id] = chain
    return chains


def school_of(session: Session, unit_id: str, schools: Iterable[str]) -> str:
    """The school a unit belongs to: the nearest unit at or above it among `schools` (the units owning buildings).

    A unit under no school (a county office, or a school without buildings) gets the highest unit above it
    whose subtree holds no school, so it is never widened into another school's units.
    """
    school_ids = set(schools)
    chains = parent_chains(session, {unit_id, *school_ids})
    chain = chains[unit_id]
    for unit in chain:
        if unit in school_ids:
            return unit
    above_schools = {unit for school in school_ids for unit in chains[school][1:]}
    top = unit_id
    for unit in chain[1:]:
        if unit in above_schools:
            break
        top = unit
    return top


@dataclass(frozen=True, slots=True)
class UnitFigures:
    """One row of the statistics table (seed 002 附件1) for a unit and a period."""

    unit_id: str
    found: int = 0  # 新发现 in the period
    rectified: int = 0  # 已整改 in the period
    closed: int = 0  # 已销号 in the period
    outstanding: int = 0  # 未销号 now
    overdue: int = 0  # 逾期 now
    major: int = 0  # 重大 still open


def unit_figures(
    session: Session,
    *,
    campaign_id: str,
    unit_ids: Iterable[str] | None,
    today: date,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, UnitFigures]:
    """Per-unit figures computed in SQL; `since`/`until` bound the period counts."""

    def in_period(column: Mapped[datetime | None]) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = [column.isnot(None)]
        if since is not None:
            conditions.append(column >= since)
        if until is not None:
            conditions.append(column < until)
        return and_(*conditions)

    live = col(Hazard.status) != HazardStatus.WITHDRAWN.value
    is_open = col(Hazard.status).in_(OPEN_STATUSES)
    statement = (
        sa_select(
            col(Hazard.unit_id),
            func.sum(case((and_(live, in_period(col(Hazard.found_at))), 1), else_=0)),
            func.sum(case((and_(live, in_period(col(Hazard.rectified_at))), 1), else_=0)),
            func.sum(case((and_(live, in_period(col(Hazard.closed_at))), 1), else_=0)),
            func.sum(case((is_open, 1), else_=0)),
            func.sum(
                case(
                    (and_(col(Hazard.status) == HazardStatus.RECTIFYING.value, col(Hazard.deadline) < today), 1),
                    else_=0,
                )
            ),
            func.sum(case((and_(is_open, col(Hazard.level) == "重大"), 1), else_=0)),
        )
        .where(col(Hazard.campaign_id) == campaign_id)
        .group_by(Hazard.unit_id)
    )
    wanted = None if unit_ids is None else set(unit_ids)
    if wanted is not None:
        statement = statement.where(col(Hazard.unit_id).in_(wanted))
    figures = {
        row[0]: UnitFigures(row[0], *(int(value or 0) for value in row[1:]))
        for row in session.execute(statement)
    }
    for unit_id in wanted or ():
        figures.setdefault(unit_id, UnitFigures(unit_id))
    return figures


def total_figures(figures: Iterable[UnitFigures]) -> UnitFigures:
    rows = list(figures)
    return UnitFigures(
        "合计",
        found=sum(f.found for f in rows),
        rectified=sum(f.rectified for f in rows),
        closed=sum(f.closed for f in rows),
        outstanding=sum(f.outstanding for f in rows),
        overdue=sum(f.overdue for f in rows),
        major=sum(f.major for f in rows),
    )


def keep_pending_photo(
    session: Session, *, platform: str, sender_id: str, chat_id: str, at: datetime,
    filename: str, content_type: str, data: bytes, source_msg_id: int | None = None,
) -> PendingPhoto:
    """Keep a photo sent without words until its sender's next report or 整改 in that chat takes it."""
    row = PendingPhoto(
        platform=platform, sender_id=sender_id, chat_id=chat_id, received_at=at, filename=filename[:200],
        content_type=content_type[:64], data=data, source_msg_id=source_msg_id,
    )
    session.add(row)
    session.flush()
    return row


def take_pending_photos(
    session: Session, *, platform: str, sender_id: str, chat_id: str, since: datetime
) -> list[PendingPhoto]:
    """The sender's photos in that chat received since `since`, oldest first, removed from the pending table."""
    rows = list(session.exec(
        select(PendingPhoto)
        .where(
            PendingPhoto.platform == platform, PendingPhoto.sender_id == sender_id, PendingPhoto.chat_id == chat_id,
            PendingPhoto.received_at >= since,
        )
        .order_by(col(PendingPhoto.id))
        .with_for_update(skip_locked=True)  # two handler processes never attach the same photo twice
    ))
    for row in rows:
        session.delete(row)
    session.flush()
    return rows


def count_pending_photos(session: Session, *, platform: str, sender_id: str, chat_id: str, since: datetime) -> int:
    """How many photos the sender has waiting in that chat (received since `since`)."""
    statement = select(func.count()).select_from(PendingPhoto).where(
        PendingPhoto.platform == platform, PendingPhoto.sender_id == sender_id, PendingPhoto.chat_id == chat_id,
        PendingPhoto.received_at >= since,
    )
    return int(session.exec(statement).one())


def drop_expired_pending_photos(session: Session, *, before: datetime) -> int:
    """Delete pending photos received before `before` (nobody wrote the words in time)."""
    result = session.execute(delete(PendingPhoto).where(col(PendingPhoto.received_at) < before))
    return int(cast(CursorResult[Any], result).rowcount or 0)  # a DELETE's result is a CursorResult


def take_pending_photos_dropping_expired(
    session: Session, *, platform: str, sender_id: str, chat_id: str, since: datetime
) -> list[PendingPhoto]:
    """take_pending_photos() and drop_expired_pending_photos(before=since) in one statement (a report runs it):
    deletes the sender's photos in that chat and every expired one, and returns the sender's unexpired ones,
    oldest first. Concurrent handlers never take the same photo twice: the second waits for the first's row
    locks (PostgreSQL) or write lock (SQLite) and then finds them gone."""
    rows = session.connection().execute(
        _TAKE_PENDING, {"platform": platform, "sender_id": sender_id, "chat_id": chat_id, "since": since}
    ).all()
    kept = [
        PendingPhoto(**row._mapping)
        for row in rows
        if (row.platform, row.sender_id, row.chat_id) == (platform, sender_id, chat_id) and row.received_at >= since
    ]
    return sorted(kept, key=lambda photo: photo.id or 0)


_PENDING = table_of(PendingPhoto)
_TAKE_PENDING = (  # built once: every report runs it
    delete(_PENDING)
    .where(or_(
        and_(_PENDING.c.platform == bindparam("platform"), _PENDING.c.sender_id == bindparam("sender_id"),
             _PENDING.c.chat_id == bindparam("chat_id")),
        _PENDING.c.received_at < bindparam("since"),
    ))
    .returning(*_PENDING.c)
)


@dataclass(frozen=True, slots=True)
class OpenHazardFact:
    """An open hazard as `safetybot plan` previews it (escalations, 督办 checks): its unit chain, the unit first."""

    id: int
    number: int
    campaign_id: str
    chain: tuple[str, ...]
    deadline: date
    level: str
    found_at: datetime
    status: str
    school_id: str | None = None


def open_hazard_facts(session: Session) -> list[OpenHazardFact]:
    """Every open (整改中 or 待验收) hazard, in campaign and number order."""
    hazards = list(
        session.exec(
            select(Hazard).where(col(Hazard.status).in_(OPEN_STATUSES)).order_by(col(Hazard.campaign_id), col(Hazard.number))
        )
    )
    chains = parent_chains(session, {h.unit_id for h in hazards})
    return [
        OpenHazardFact(int(h.id or 0), h.number, h.campaign_id, tuple(chains[h.unit_id]), h.deadline, h.level,
                       h.found_at, h.status, h.school_id)
        for h in hazards
    ]
