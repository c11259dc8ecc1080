"""The platform directory in the database: a plan of units and people, applied as one diff.

`bot.directory` turns a WeCom/DingTalk snapshot and the admin's `[directory]` settings into a
`DirectoryPlan`; `apply_plan` makes the rows with source="platform" match it. Rows of the TOML
(source="config") are never touched here, and rows that left the directory are deactivated, never
deleted: hazards and their history keep pointing at them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Mapped
from sqlmodel import Session, col, select

from models.tables import PersonRow, UnitRow

CONFIG, PLATFORM = "config", "platform"  # values of unit.source / person.source
CHAT = "chat"  # person.source of an unknown sender bound in chat (我是 …), chat_group.source of 登记本群
_MAX_ID = 64


def stable_id(platform: str, kind: str, platform_id: str) -> str:
    """`wecom-dept-123`, `dingtalk-user-manager4711`; hashed when a long user id would not fit."""
    candidate = f"{platform}-{kind}-{platform_id}"
    if len(candidate) <= _MAX_ID and re.fullmatch(r"[A-Za-z0-9_.-]+", platform_id):
        return candidate
    digest = hashlib.sha256(platform_id.encode("utf-8")).hexdigest()[:24]
    return f"{platform}-{kind}-h{digest}"


@dataclass(frozen=True)
class Department:
    """A platform department as fetched; ids are strings on both platforms."""

    id: str
    name: str
    parent_id: str | None
    order: int = 0


@dataclass(frozen=True)
class Member:
    """A platform member; `department_ids` lists the main department first, `leader_of` the ones they head."""

    user_id: str
    name: str
    department_ids: tuple[str, ...]
    leader_of: tuple[str, ...] = ()
    mobile: str | None = None
    active: bool = True


@dataclass(frozen=True)
class Snapshot:
    """The whole directory of one platform at one moment, as far as the app may see it."""

    platform: str  # "wecom" | "dingtalk"
    departments: tuple[Department, ...]
    members: tuple[Member, ...]
    api_calls: int = 0


@dataclass(frozen=True)
class PlannedUnit:
    id: str
    name: str
    parent_id: str
    seq: int
    platform_dept_id: str


@dataclass(frozen=True)
class PlannedPerson:
    id: str
    name: str
    unit_id: str
    roles: tuple[str, ...]
    user_id: str
    mobile: str | None = None


@dataclass(frozen=True)
class DirectoryPlan:
    """What the platform rows should be after a sync."""

    platform: str
    units: tuple[PlannedUnit, ...]
    people: tuple[PlannedPerson, ...]


@dataclass
class Changes:
    """How many rows of one kind a sync added (or re-activated), changed, moved and deactivated."""

    added: int = 0
    changed: int = 0
    moved: int = 0
    deactivated: int = 0
    unchanged: int = 0
    # The names behind the counts (not `unchanged`), for `directory sync/import --dry-run`, first NAMES_KEPT each.
    names: dict[str, list[str]] = field(default_factory=dict)

    def note(self, what: str, name: str) -> None:
        """Count one row as `what` (added / changed / moved / deactivated) and keep its name."""
        setattr(self, what, getattr(self, what) + 1)
        kept = self.names.setdefault(what, [])
        if len(kept) < NAMES_KEPT:
            kept.append(name)


NAMES_KEPT = 20


@dataclass
class AppliedPlan:
    units: Changes = field(default_factory=Changes)
    people: Changes = field(default_factory=Changes)


def _user_id_column(platform: str) -> Mapped[str | None]:
    return col(PersonRow.wecom_userid) if platform == "wecom" else col(PersonRow.dingtalk_staff_id)


def user_ids_typed_in_config(session: Session, platform: str) -> set[str]:
    """Platform user ids already given to active people of the TOML (the TOML entry wins)."""
    column = _user_id_column(platform)
    rows = session.exec(
        select(column).where(PersonRow.source == CONFIG, PersonRow.active == True, column != None)  # noqa: E711,E712
    )
    return {str(value) for value in rows}


def apply_plan(session: Session, plan: DirectoryPlan, now: datetime) -> AppliedPlan:
    """Make the platform units and people match the plan; flushes, the caller commits."""
    result = AppliedPlan()
    _apply_units(session, plan.units, result.units)
    session.flush()  # people point at the units
    _apply_people(session, plan, now, result.people)
    session.flush()
    return result


def _apply_units(session: Session, planned: tuple[PlannedUnit, ...], changes: Changes) -> None:
    existing = {row.id: row for row in session.exec(select(UnitRow).where(UnitRow.source == PLATFORM))}
    for unit in planned:
        row = existing.pop(unit.id, None)
        if row is None or not row.active:
            row = row or UnitRow(id=unit.id, name=unit.name, source=PLATFORM)
            changes.note("added", unit.name)
        elif row.parent_id != unit.parent_id:
            changes.note("moved", unit.name)
        elif row.name != unit.name:
            changes.note("changed", f"{row.name}→{unit.name}")
        else:
            changes.unchanged += 1
        row.name, row.parent_id, row.seq, row.active = unit.name, unit.parent_id, unit.seq, True
        row.platform_dept_id = unit.platform_dept_id
        session.add(row)
    for row in existing.values():
        if row.active:
            row.active = False
            changes.note("deactivated", row.name)
            session.add(row)


def _apply_people(session: Session, plan: DirectoryPlan, now: datetime, changes: Changes) -> None:
    # People bound in chat (我是 …) are taken over when the directory lists them, and left alone when not.
    existing = {
        row.id: row for row in session.exec(select(PersonRow).where(col(PersonRow.source).in_((PLATFORM, CHAT))))
    }
    for person in plan.people:
        row = existing.pop(person.id, None)
        roles = ",".join(person.roles)
        if row is None or not row.active:
            row = row or PersonRow(id=person.id, name=person.name, unit_id=person.unit_id, source=PLATFORM)
            changes.note("added", person.name)
        elif row.unit_id != person.unit_id:
            changes.note("moved", person.name)
        elif (row.name, row.roles, row.mobile) != (person.name, roles, person.mobile):
            changes.note("changed", person.name if row.name == person.name else f"{row.name}→{person.name}")
        else:
            changes.unchanged += 1
        row.name, row.unit_id, row.roles, row.mobile = person.name, person.unit_id, roles, person.mobile
        row.active, row.left_at, row.source = True, None, PLATFORM
        if plan.platform == "wecom":
            row.wecom_userid = person.user_id
        else:
            row.dingtalk_staff_id = person.user_id
        session.add(row)
    for row in existing.values():
        if row.active and row.source == PLATFORM:
            row.active, row.left_at = False, now
            changes.note("deactivated", row.name)
            session.add(row)
