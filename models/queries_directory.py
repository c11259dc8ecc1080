"""Directory lookups (people, units, groups, campaigns) for the engine, handlers and scheduler.

Each answers from the session's cached directory (models/directory_cache.py) when one is attached, else
from the database; both give the same answer.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from models.directory_cache import cached, into_session
from models.tables import CampaignRow, GroupRow, GroupUnit, MilestoneRow, PersonRow, PhaseRow, UnitRow

_SENDER_COLUMNS = {"console": PersonRow.id, "wecom": PersonRow.wecom_userid, "dingtalk": PersonRow.dingtalk_staff_id}


def person_for_sender(session: Session, platform: str, sender_id: str) -> PersonRow | None:
    """The active person a platform's sender id names (console: the person id)."""
    column = _SENDER_COLUMNS.get(platform)
    if column is None:
        return None
    snapshot = cached(session)
    if snapshot is not None:
        person = snapshot.people_by_platform.get((platform, sender_id))
        return into_session(session, person) if person is not None else None
    return session.exec(select(PersonRow).where(column == sender_id, PersonRow.active == True)).first()  # noqa: E712


def group_for_chat(session: Session, platform: str, chat_id: str) -> GroupRow | None:
    """The configured group of a chat (console: the group id)."""
    snapshot = cached(session)
    if snapshot is not None:
        group = snapshot.groups.get(chat_id) if platform == "console" else snapshot.group_by_chat.get((platform, chat_id))
        return into_session(session, group) if group is not None else None
    if platform == "console":
        return session.get(GroupRow, chat_id)
    return session.exec(select(GroupRow).where(GroupRow.platform == platform, GroupRow.chat_id == chat_id)).first()


def campaign_for(session: Session, group: GroupRow | None, today: date) -> CampaignRow | None:
    """The group's campaign, else the one running today, else the latest started."""
    snapshot = cached(session)
    if snapshot is not None:
        found = snapshot.campaigns.get(group.campaign_id) if group is not None and group.campaign_id else None
        found = found or snapshot.running_campaign(today)
        return into_session(session, found) if found is not None else None
    if group is not None and group.campaign_id:
        campaign = session.get(CampaignRow, group.campaign_id)
        if campaign is not None:
            return campaign
    running = session.exec(
        select(CampaignRow)
        .where(CampaignRow.start <= today, CampaignRow.end >= today)
        .order_by(col(CampaignRow.start).desc())
    ).first()
    if running is not None:
        return running
    return session.exec(
        select(CampaignRow).where(col(CampaignRow.start) <= today).order_by(col(CampaignRow.start).desc())
    ).first()


def campaign_ids(session: Session) -> list[str]:
    return list(session.exec(select(CampaignRow.id)))


def group_unit_ids(session: Session, group_id: str) -> frozenset[str]:
    """The units a group is configured with (the roots of its scope)."""
    snapshot = cached(session)
    if snapshot is not None:
        return snapshot.group_units.get(group_id, frozenset())
    return frozenset(session.exec(select(GroupUnit.unit_id).where(GroupUnit.group_id == group_id)))


def group_unit_ids_of(session: Session, group_ids: Iterable[str]) -> dict[str, list[str]]:
    """group_unit_ids() of many groups in one query, sorted (groups without units are left out)."""
    wanted = set(group_ids)
    roots: dict[str, list[str]] = {}
    if wanted:
        statement = select(col(GroupUnit.group_id), col(GroupUnit.unit_id)).where(col(GroupUnit.group_id).in_(wanted))
        for group_id, unit_id in session.exec(statement):
            roots.setdefault(group_id, []).append(unit_id)
    return {group_id: sorted(units) for group_id, units in roots.items()}


def staff_groups(session: Session) -> tuple[list[tuple[str, str | None]], dict[str, set[str]]]:
    """Every staff group as (id, campaign id), and the units of those that have units."""
    units: dict[str, set[str]] = {}
    for staff_id, unit_id in session.exec(
        select(col(GroupUnit.group_id), col(GroupUnit.unit_id)).join(GroupRow, col(GroupRow.id) == col(GroupUnit.group_id))
        .where(GroupRow.kind == "staff")
    ):
        units.setdefault(staff_id, set()).add(unit_id)
    groups = [(str(gid), cid) for gid, cid in session.exec(select(GroupRow.id, GroupRow.campaign_id).where(GroupRow.kind == "staff"))]
    return groups, units


def leaders_groups(session: Session) -> list[GroupRow]:
    """Every leaders' group, by id."""
    return list(session.exec(select(GroupRow).where(GroupRow.kind == "leaders").order_by(GroupRow.id)))


def group_ids(session: Session) -> list[str]:
    return list(session.exec(select(GroupRow.id)))


def groups_by_id(session: Session, ids: Iterable[str]) -> dict[str, GroupRow]:
    wanted = set(ids)
    return {g.id: g for g in session.exec(select(GroupRow).where(col(GroupRow.id).in_(wanted)))} if wanted else {}


def campaigns_by_id(session: Session, ids: Iterable[str]) -> dict[str, CampaignRow]:
    wanted = set(ids)
    return {c.id: c for c in session.exec(select(CampaignRow).where(col(CampaignRow.id).in_(wanted)))} if wanted else {}


def active_units(session: Session) -> list[UnitRow]:
    snapshot = cached(session)
    if snapshot is not None:
        return [unit for unit in snapshot.units.values() if unit.active]
    return list(session.exec(select(UnitRow).where(UnitRow.active == True)))  # noqa: E712


def active_people(session: Session) -> list[PersonRow]:
    snapshot = cached(session)
    if snapshot is not None:
        return [person for person in snapshot.people.values() if person.active]
    return list(session.exec(select(PersonRow).where(PersonRow.active == True)))  # noqa: E712


def active_people_named(session: Session, name: str) -> list[PersonRow]:
    """Active people with exactly this name."""
    snapshot = cached(session)
    if snapshot is not None:
        return list(snapshot.people_by_name.get(name, ()))
    return list(session.exec(select(PersonRow).where(PersonRow.name == name, PersonRow.active == True)))  # noqa: E712


def first_active_name_in(session: Session, unit_ids: Iterable[str]) -> str | None:
    """The name of the active person with the smallest id among these units' people."""
    wanted = set(unit_ids)
    snapshot = cached(session)
    if snapshot is not None:
        found = [p for p in snapshot.people.values() if p.active and p.unit_id in wanted]
        return min(found, key=lambda p: p.id).name if found else None
    statement = select(PersonRow.name).where(
        col(PersonRow.unit_id).in_(wanted), col(PersonRow.active) == True  # noqa: E712
    )
    return session.exec(statement.order_by(PersonRow.id)).first()


def unit_names(session: Session, unit_ids: Iterable[str]) -> dict[str, str]:
    """{unit id: name} of the units that exist among these ids."""
    ids = list(unit_ids)
    if not ids:
        return {}
    snapshot = cached(session)
    if snapshot is not None:
        return {unit_id: unit.name for unit_id in ids if (unit := snapshot.units.get(unit_id)) is not None}
    return {unit.id: unit.name for unit in session.exec(select(UnitRow).where(col(UnitRow.id).in_(ids)))}


def top_unit_ids(session: Session) -> list[str]:
    """Active units without a parent, by id."""
    return sorted(session.exec(select(UnitRow.id).where(UnitRow.parent_id == None, UnitRow.active == True)))  # noqa: E711,E712


def top_unit_names(session: Session) -> list[str]:
    """Names of the active units without a parent."""
    return list(session.exec(select(UnitRow.name).where(UnitRow.parent_id == None, UnitRow.active == True)).all())  # noqa: E711,E712


# -- the config's directory copied into the database (bot/sync.py) --------------------------------


def load_directory_rows(session: Session) -> list[object]:
    """Every campaign, unit, person and group row, loaded into the session's identity map (keep the list:
    the session holds rows weakly), so `session.get` of any of them needs no query."""
    loaded: list[object] = []
    for table in (CampaignRow, UnitRow, PersonRow, GroupRow):
        loaded.extend(session.exec(select(table)).all())
    return loaded


def clear_campaign_plan(session: Session, campaign_id: str) -> None:
    """Delete a campaign's phases and milestones (the config's are added again)."""
    session.execute(delete(PhaseRow).where(col(PhaseRow.campaign_id) == campaign_id))
    session.execute(delete(MilestoneRow).where(col(MilestoneRow.campaign_id) == campaign_id))


def deactivate_units_except(session: Session, unit_ids: Collection[str], *, source: str) -> None:
    """Deactivate the units of `source` not among `unit_ids`."""
    session.execute(
        update(UnitRow)
        .where(col(UnitRow.id).not_in(unit_ids), col(UnitRow.source) == source)
        .values(active=False)
    )


def deactivate_people_except(session: Session, person_ids: Collection[str], *, source: str) -> None:
    """Deactivate the people of `source` not among `person_ids`."""
    session.execute(
        update(PersonRow)
        .where(col(PersonRow.id).not_in(person_ids), col(PersonRow.source) == source)
        .values(active=False)
    )


def clear_group_units(session: Session, *, keep_source: str | None = None) -> None:
    """Delete the groups' units (the config's are added again); groups of `keep_source` (bound in chat) keep theirs."""
    statement = delete(GroupUnit)
    if keep_source is not None:
        statement = statement.where(
            col(GroupUnit.group_id).not_in(select(col(GroupRow.id)).where(col(GroupRow.source) == keep_source))
        )
    session.execute(statement)


def people_by_id(session: Session, person_ids: Iterable[str]) -> dict[str, PersonRow]:
    """{person id: row} of the people (active or not) among these ids (for @-mentions in replies)."""
    ids = set(person_ids)
    if not ids:
        return {}
    snapshot = cached(session)
    if snapshot is not None:
        return {pid: person for pid in ids if (person := snapshot.people.get(pid)) is not None}
    return {p.id: p for p in session.exec(select(PersonRow).where(col(PersonRow.id).in_(ids)))}
