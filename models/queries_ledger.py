"""Ledger queries of the handlers and the scheduler: hazards, their photos, events, submissions, the plan."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime

from sqlalchemy import or_
from sqlmodel import Session, col, select

from models.directory_cache import cached
from models.ids import stored_ids
from models.tables import (
    OPEN_STATUSES,
    AttachmentFile,
    Hazard,
    HazardEvent,
    HazardStatus,
    MilestoneRow,
    PersonRow,
    PhaseRow,
    Submission,
    UnitRow,
)


def open_hazards(
    session: Session,
    campaign_id: str,
    *,
    units: Collection[str] | None = None,
    also_units: Collection[str] | None = None,
    person_id: str | None = None,
    overdue_on: date | None = None,
    level: str | None = None,
    status: str | None = None,
    order_by_deadline: bool = False,
) -> list[Hazard]:
    """Open (整改中/待验收) hazards of a campaign: within `units` and `also_units` when given; the ones
    `person_id` is responsible for or reported; past their deadline on `overdue_on` (still 整改中); of one
    level or status."""
    statement = select(Hazard).where(col(Hazard.campaign_id) == campaign_id, col(Hazard.status).in_(OPEN_STATUSES))
    for scope in (units, also_units):
        if scope is not None:
            statement = statement.where(col(Hazard.unit_id).in_(scope))
    if person_id is not None:
        statement = statement.where((Hazard.responsible_id == person_id) | (Hazard.reporter_id == person_id))
    if overdue_on is not None:
        statement = statement.where(Hazard.status == HazardStatus.RECTIFYING.value, Hazard.deadline < overdue_on)
    if level is not None:
        statement = statement.where(Hazard.level == level)
    if status is not None:
        statement = statement.where(Hazard.status == status)
    if order_by_deadline:
        statement = statement.order_by(col(Hazard.deadline))
    return list(session.exec(statement))


def overdue_hazards(
    session: Session, campaign_id: str, scope: Collection[str] | None, *, due_on_or_before: date, listed: int
) -> tuple[list[tuple[int, str | None]], list[Hazard]]:
    """Hazards still 整改中 whose deadline is on or before a day, most overdue first: (id, responsible id)
    of all, and whole rows of the first `listed` (a school can have hundreds)."""
    order = (col(Hazard.deadline), col(Hazard.number))
    conditions = [
        col(Hazard.campaign_id) == campaign_id, col(Hazard.status) == HazardStatus.RECTIFYING.value,
        col(Hazard.deadline) <= due_on_or_before,
    ]
    if scope is not None:
        conditions.append(col(Hazard.unit_id).in_(scope))
    pairs = [(int(row[0]), row[1]) for row in session.execute(select(Hazard.id, Hazard.responsible_id).where(*conditions).order_by(*order)).all()]
    listed_ids = [row[0] for row in pairs[:listed]]
    rows = list(session.exec(select(Hazard).where(col(Hazard.id).in_(listed_ids)).order_by(*order))) if listed_ids else []
    return pairs, rows


def has_fix_photo(session: Session, hazard_id: int) -> bool:
    """A photo was stored with a 整改 or 销号 of the hazard."""
    fix_events = select(HazardEvent.id).where(
        col(HazardEvent.hazard_id) == hazard_id, col(HazardEvent.action).in_(("rectify", "close"))
    )
    photo = select(col(AttachmentFile.id)).where(col(AttachmentFile.event_id).in_(fix_events)).limit(1)
    return session.exec(photo).first() is not None


def hazard_photos(session: Session, hazard_id: int) -> list[tuple[int, datetime | None]]:
    """(id, missing_since) of the hazard's photos, in id order."""
    statement = select(AttachmentFile.id, AttachmentFile.missing_since).where(AttachmentFile.hazard_id == hazard_id)
    rows = session.exec(statement.order_by(col(AttachmentFile.id))).all()
    return list(zip(stored_ids(photo_id for photo_id, _ in rows), (missing for _, missing in rows), strict=True))


def person_names(session: Session, person_ids: Iterable[str]) -> dict[str, str]:
    """{person id: name} of the people (active or not) among these ids."""
    ids = set(person_ids)
    if not ids:
        return {}
    snapshot = cached(session)
    if snapshot is not None:
        return {pid: person.name for pid in ids if (person := snapshot.people.get(pid)) is not None}
    return {p.id: p.name for p in session.exec(select(PersonRow).where(col(PersonRow.id).in_(ids)))}


def phases(session: Session, campaign_id: str) -> list[PhaseRow]:
    return list(session.exec(select(PhaseRow).where(col(PhaseRow.campaign_id) == campaign_id).order_by(col(PhaseRow.seq))))


def milestones(session: Session, campaign_id: str) -> list[MilestoneRow]:
    return list(session.exec(select(MilestoneRow).where(col(MilestoneRow.campaign_id) == campaign_id).order_by(col(MilestoneRow.due))))


def submitted_periods(session: Session, campaign_id: str, unit_id: str) -> set[date]:
    """The period due dates a unit has submitted (报送) for."""
    return set(
        session.exec(select(col(Submission.period_due)).where(Submission.campaign_id == campaign_id, Submission.unit_id == unit_id))
    )


def submission(session: Session, campaign_id: str, unit_id: str, period_due: date) -> Submission | None:
    return session.exec(
        select(Submission).where(
            Submission.campaign_id == campaign_id, Submission.unit_id == unit_id, Submission.period_due == period_due
        )
    ).first()


def submitted_units(session: Session, campaign_id: str, period_due: date) -> set[str]:
    """The units that submitted for one period."""
    return set(session.exec(select(Submission.unit_id).where(Submission.campaign_id == campaign_id, Submission.period_due == period_due)))


def submissions_among(
    session: Session, campaign_ids: Iterable[str], period_dues: Iterable[date], unit_ids: Iterable[str]
) -> set[tuple[str, date, str]]:
    """(campaign, period due, unit) of the submissions among these campaigns, periods and units."""
    return {
        (campaign_id, due, unit_id)
        for campaign_id, due, unit_id in session.execute(
            select(col(Submission.campaign_id), col(Submission.period_due), col(Submission.unit_id)).where(
                col(Submission.campaign_id).in_(set(campaign_ids)),
                col(Submission.period_due).in_(set(period_dues)),
                col(Submission.unit_id).in_(set(unit_ids)),
            )
        )
    }


def people_of_units(session: Session, unit_ids: Collection[str]) -> list[tuple[str, str, str, str | None]]:
    """(person id, roles, unit id, the unit's parent id) of the active people of these units and of their
    direct sub-units, by person id (looked up by index: a province has tens of thousands of people)."""
    units = (
        select(UnitRow.id, UnitRow.parent_id)
        .where(or_(col(UnitRow.id).in_(unit_ids), col(UnitRow.parent_id).in_(unit_ids)))
        .subquery()
    )
    statement = (
        select(PersonRow.id, PersonRow.roles, PersonRow.unit_id, units.c.parent_id)
        .join(units, units.c.id == PersonRow.unit_id)
        .where(PersonRow.active == True)  # noqa: E712
        .order_by(PersonRow.id)
    )
    return [(str(pid), str(roles), str(uid), parent) for pid, roles, uid, parent in session.exec(statement)]
