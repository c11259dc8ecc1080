"""Queries of the escalation ladder and the 督办 checks (scheduler/messages.py composes the messages)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date, datetime

from sqlmodel import Session, col, select

from models.tables import DuePush, GroupRow, GroupUnit, Hazard, HazardStatus, OPEN_STATUSES, PersonRow, UnitRow


def units_per_group(session: Session) -> dict[str, set[str]]:
    """{group id: the units configured for it} (groups without units are absent: they cover everything)."""
    roots: dict[str, set[str]] = {}
    for group_id, unit_id in session.exec(select(col(GroupUnit.group_id), col(GroupUnit.unit_id))):
        roots.setdefault(group_id, set()).add(unit_id)
    return roots


def groups_in_id_order(session: Session) -> list[GroupRow]:
    return list(session.exec(select(GroupRow).order_by(col(GroupRow.id))))


def active_people_in_units(session: Session, unit_ids: Collection[str]) -> list[PersonRow]:
    return list(session.exec(
        select(PersonRow).where(col(PersonRow.active).is_(True), col(PersonRow.unit_id).in_(unit_ids))
    ))


def pushes_before(session: Session, push: DuePush, since: datetime) -> list[DuePush]:
    """The same kind of push for the same group and campaign, due in [since, push.due_at), latest first."""
    return list(session.exec(
        select(DuePush).where(
            DuePush.kind == push.kind, DuePush.group_id == push.group_id, DuePush.campaign_id == push.campaign_id,
            col(DuePush.due_at) < push.due_at, col(DuePush.due_at) >= since,
        ).order_by(col(DuePush.due_at).desc())
    ).all())


def rectifying_due_between(
    session: Session, campaign_id: str, scope: Collection[str] | None, first: date, last: date
) -> list[Hazard]:
    """Hazards still 整改中 whose deadline is in [first, last], in deadline and number order."""
    statement = select(Hazard).where(
        Hazard.campaign_id == campaign_id, Hazard.status == HazardStatus.RECTIFYING.value,
        col(Hazard.deadline) >= first, col(Hazard.deadline) <= last,
    )
    if scope is not None:
        statement = statement.where(col(Hazard.unit_id).in_(scope))
    return list(session.exec(statement.order_by(col(Hazard.deadline), col(Hazard.number))))


def open_majors_in_found_order(session: Session, campaign_id: str, scope: Collection[str] | None) -> list[Hazard]:
    """Open 重大 hazards (挂牌督办), oldest first."""
    statement = select(Hazard).where(
        Hazard.campaign_id == campaign_id, col(Hazard.status).in_(OPEN_STATUSES), Hazard.level == "重大"
    )
    if scope is not None:
        statement = statement.where(col(Hazard.unit_id).in_(scope))
    return list(session.exec(statement.order_by(col(Hazard.found_at), col(Hazard.number))))


def units_by_id(session: Session, unit_ids: Iterable[str]) -> dict[str, UnitRow]:
    ids = set(unit_ids)
    if not ids:
        return {}
    return {row.id: row for row in session.exec(select(UnitRow).where(col(UnitRow.id).in_(ids)))}
