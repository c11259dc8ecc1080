"""A platform snapshot + the admin's `[directory]` settings → the platform units and people in the database.

This is the one place where a platform directory becomes units and people: fetchers (and later the
console-export import) build a `Snapshot`, `apply_snapshot` turns it into rows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from bot.config import Config, Directory
from bot.directory.mobiles import is_mobile
from models.directory import (
    AppliedPlan,
    Changes,
    Department,
    DirectoryPlan,
    Member,
    PlannedPerson,
    PlannedUnit,
    Snapshot,
    apply_plan,
    stable_id,
    user_ids_typed_in_config,
)

UNIT_SEQ_BASE = 100_000  # platform units list after the TOML's units, in the platform's order


@dataclass
class SyncReport:
    """What a sync changed, and what it could not resolve (by TOML key, never by directory data)."""

    units: Changes = field(default_factory=Changes)
    people: Changes = field(default_factory=Changes)
    api_calls: int = 0
    skipped_config_people: int = 0  # members already typed in [[people]]: the TOML entry wins
    problems: list[str] = field(default_factory=list)
    purged: int = 0  # people who left more than `retention_days` ago whose personal fields were removed

    def lines(self) -> list[str]:
        """A short human summary, one line per kind."""
        out = []
        for kind, c in (("units", self.units), ("people", self.people)):
            out.append(
                f"{kind}: {c.added} added, {c.changed} changed, {c.moved} moved, "
                f"{c.deactivated} deactivated, {c.unchanged} unchanged"
            )
        out.append(f"api calls: {self.api_calls}")
        if self.purged:
            out.append(f"purged (left more than retention_days ago): {self.purged}")
        if self.skipped_config_people:
            out.append(f"kept from [[people]]: {self.skipped_config_people}")
        return out + self.problems

    def name_lines(self) -> list[str]:
        """Who and what would change, by name (the first 20 of each kind): `directory sync/import --dry-run`."""
        out = []
        for kind, c in (("units", self.units), ("people", self.people)):
            for what in ("added", "changed", "moved", "deactivated"):
                names, count = c.names.get(what, []), getattr(c, what)
                if count:
                    more = f" … and {count - len(names)} more" if count > len(names) else ""
                    out.append(f"{kind} {what} ({count}): {'、'.join(names)}{more}")
        return out


def apply_snapshot(session: Session, config: Config, snapshot: Snapshot, now: datetime) -> SyncReport:
    """Make the database's platform units and people match the snapshot (commit is the caller's)."""
    if config.directory is None:
        raise ValueError("no [directory] in the config")
    taken = user_ids_typed_in_config(session, snapshot.platform)
    directory, problems = config.directory, list[str]()
    if not directory.schools:
        mapping, problems = schools_by_name(config, snapshot)
        directory = directory.model_copy(update={"schools": mapping})
    plan, report = build_plan(directory, snapshot, taken)
    report.problems[:0] = problems
    applied: AppliedPlan = apply_plan(session, plan, now)
    report.units, report.people = applied.units, applied.people
    return report


def schools_by_name(config: Config, snapshot: Snapshot) -> tuple[dict[str, str], list[str]]:
    """`[directory] schools` left out: each department named like a [[units]] entry (name or alias) is that unit.

    A name two departments share maps neither (the problem says so: give `schools` by department id then).
    """
    unit_of_name: dict[str, str] = {}
    for unit in config.units:
        for name in (unit.name, *unit.aliases):
            unit_of_name.setdefault(name, unit.id)
    departments: dict[str, list[str]] = defaultdict(list)
    for dept in snapshot.departments:
        if dept.name in unit_of_name:
            departments[dept.name].append(dept.id)
    mapping: dict[str, str] = {}
    problems: list[str] = []
    for name, dept_ids in departments.items():
        unit_id = unit_of_name[name]
        if len(dept_ids) > 1:
            problems.append(f"units.{unit_id}: {len(dept_ids)} departments are named {name!r}; "
                            "map the right one in [directory] schools by its department id")
        elif unit_id not in mapping.values():
            mapping[dept_ids[0]] = unit_id
    return mapping, problems


def build_plan(directory: Directory, snapshot: Snapshot, taken_user_ids: set[str]) -> tuple[DirectoryPlan, SyncReport]:
    """The units and people the snapshot implies; members outside every school are left out."""
    report = SyncReport(api_calls=snapshot.api_calls)
    unit_of_dept, units = _plan_units(directory, snapshot, report)
    members = [m for m in snapshot.members if m.active and any(d in unit_of_dept for d in m.department_ids)]
    report.skipped_config_people = sum(m.user_id in taken_user_ids for m in members)
    members = [m for m in members if m.user_id not in taken_user_ids]
    roles_of, mobile_needed = _resolve_roles(directory, members, report)
    people = tuple(
        _plan_person(snapshot.platform, member, unit_of_dept, roles_of.get(member.user_id),
                     member.mobile if member.user_id in mobile_needed else None)
        for member in members
    )
    return DirectoryPlan(platform=snapshot.platform, units=tuple(units), people=people), report


def _plan_units(
    directory: Directory, snapshot: Snapshot, report: SyncReport
) -> tuple[dict[str, str], list[PlannedUnit]]:
    """Each school's department subtree as units under the school's configured unit."""
    departments = {d.id: d for d in snapshot.departments}
    children: dict[str, list[Department]] = defaultdict(list)
    for dept in snapshot.departments:
        if dept.parent_id is not None:
            children[dept.parent_id].append(dept)
    unit_of_dept: dict[str, str] = {}
    for dept_id, unit_id in directory.schools.items():
        if dept_id in departments:
            unit_of_dept[dept_id] = unit_id
        else:
            report.problems.append(
                f"directory.schools.{dept_id}: the app cannot see this department; add it to the app's visible range"
            )
    units: list[PlannedUnit] = []
    queue = [d for d in directory.schools if d in unit_of_dept]
    while queue:
        parent = queue.pop(0)
        for dept in sorted(children.get(parent, ()), key=lambda d: (d.order, d.id)):
            if dept.id in unit_of_dept:  # another school, or seen already
                continue
            unit_id = stable_id(snapshot.platform, "dept", dept.id)
            unit_of_dept[dept.id] = unit_id
            units.append(PlannedUnit(
                id=unit_id, name=dept.name, parent_id=unit_of_dept[parent],
                seq=UNIT_SEQ_BASE + len(units), platform_dept_id=dept.id,
            ))
            queue.append(dept.id)
    return unit_of_dept, units


def _resolve_roles(
    directory: Directory, members: Iterable[Member], report: SyncReport
) -> tuple[dict[str, tuple[str, ...]], set[str]]:
    """Roles from [[directory.roles]] by user id, mobile or name; user ids matched by mobile keep it."""
    by_id: dict[str, Member] = {}
    by_name: dict[str, list[Member]] = defaultdict(list)
    by_mobile: dict[str, list[Member]] = defaultdict(list)
    for member in members:
        by_id[member.user_id] = member
        by_name[member.name].append(member)
        if member.mobile:
            by_mobile[member.mobile].append(member)
    roles_of: dict[str, tuple[str, ...]] = {}
    mobile_needed: set[str] = set()
    for index, entry in enumerate(directory.roles):
        who = entry.who.strip()
        if who in by_id:
            found = [by_id[who]]
        elif is_mobile(who):
            found = by_mobile.get(who, [])
            mobile_needed.update(m.user_id for m in found)
        else:
            found = by_name.get(who, [])
        where = f"directory.roles[{index}].who"
        if not found:
            report.problems.append(
                f"{where}: {who!r} is no member of the schools' departments (give a user id, name or mobile)"
            )
        elif len(found) > 1:
            report.problems.append(f"{where}: {who!r} names {len(found)} members; give the user id instead")
        else:
            user_id = found[0].user_id
            merged = dict.fromkeys([*roles_of.get(user_id, ()), *entry.roles])
            roles_of[user_id] = tuple(merged)
    return roles_of, mobile_needed


def _plan_person(
    platform: str, member: Member, unit_of_dept: dict[str, str], roles: tuple[str, ...] | None, mobile: str | None
) -> PlannedPerson:
    """A member in the unit they head (else their first department in scope); heads are unit heads."""
    in_scope = [d for d in member.department_ids if d in unit_of_dept]
    led = [d for d in in_scope if d in member.leader_of]
    dept = (led or in_scope)[0]
    if roles is None:
        roles = ("unit_head",) if led else ("teacher",)
    return PlannedPerson(
        id=stable_id(platform, "user", member.user_id), name=member.name, unit_id=unit_of_dept[dept],
        roles=roles, user_id=member.user_id, mobile=mobile,
    )
