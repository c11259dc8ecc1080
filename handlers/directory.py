"""Finding people, units and buildings from the names teachers type."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

from sqlmodel import Session, col, select

from handlers.context import BuildingRef, Context
from models.ledger import descendants, school_of
from models.tables import PersonRow, UnitRow


def find_unit(session: Session, name: str, *, among: Iterable[str] | None = None) -> UnitRow | None:
    """A unit by exact name or alias, else by a unique partial match (保卫处 → 安全保卫处)."""
    allowed = None if among is None else set(among)
    units = [
        unit
        for unit in session.exec(select(UnitRow).where(UnitRow.active == True))  # noqa: E712
        if allowed is None or unit.id in allowed
    ]
    name = name.strip()
    for unit in units:
        if name == unit.name or name in unit.aliases.split("|") or name == unit.id:
            return unit
    partial = [unit for unit in units if name and (name in unit.name or unit.name in name)]
    return partial[0] if len(partial) == 1 else None


def find_people(session: Session, name: str) -> list[PersonRow]:
    """Active people with this name (there may be more than one 王芳)."""
    name = name.strip().removeprefix("@")
    return list(session.exec(select(PersonRow).where(PersonRow.name == name, PersonRow.active == True)))  # noqa: E712


def pick_person(candidates: Sequence[PersonRow], *, prefer_units: Iterable[str]) -> PersonRow | None:
    """One person of the candidates, preferring those in the given units; None when ambiguous."""
    if len(candidates) == 1:
        return candidates[0]
    preferred = set(prefer_units)
    inside = [person for person in candidates if person.unit_id in preferred]
    return inside[0] if len(inside) == 1 else None


def find_building(
    session: Session, location: str, buildings: Sequence[BuildingRef], *, unit_id: str
) -> BuildingRef | None:
    """The building of the unit's school that a location names (longest name wins: 1号教学楼 before 教学楼).

    Two schools may both have a 食堂: only the buildings of the school above `unit_id` are candidates.
    """
    if not location:
        return None
    school = school_of(session, unit_id, {building.unit_id for building in buildings})
    best: tuple[int, BuildingRef] | None = None
    for building in buildings:
        if building.unit_id != school:
            continue
        for name in building.names:
            if name and name in location and (best is None or len(name) > best[0]):
                best = (len(name), building)
    return best[1] if best else None


def unit_names(session: Session, unit_ids: Iterable[str]) -> dict[str, str]:
    ids = list(unit_ids)
    if not ids:
        return {}
    return {unit.id: unit.name for unit in session.exec(select(UnitRow).where(col(UnitRow.id).in_(ids)))}


def scope_words(context: Context) -> str:
    """How a reply names the units a chat serves: the group's, or in a private chat the sender's school."""
    return "本群负责的单位" if context.group is not None else "您所在的学校"


def example_unit(context: Context, allowed: set[str] | None) -> str:
    """A unit name the speaker may really use here: their own, else the first one the chat serves."""
    if allowed is None or context.person.unit_id in allowed:
        return unit_names(context.session, [context.person.unit_id]).get(context.person.unit_id, "总务基建处")
    names = unit_names(context.session, allowed)
    return names[min(names)] if names else "总务基建处"


def school_units(context: Context, unit_id: str) -> set[str]:
    """Every unit of the school `unit_id` belongs to (the school: the nearest unit owning buildings)."""
    schools = {building.unit_id for building in context.policy.buildings}
    return descendants(context.session, [school_of(context.session, unit_id, schools)])


def closest_people(
    session: Session, name: str, *, among: Iterable[str] | None = None, limit: int = 3
) -> list[PersonRow]:
    """Active people whose names look most like `name` (a typo such as 王建图 for 王建国), best first."""
    allowed = None if among is None else set(among)
    people = [
        person
        for person in session.exec(select(PersonRow).where(PersonRow.active == True))  # noqa: E712
        if allowed is None or person.unit_id in allowed
    ]
    names = difflib.get_close_matches(name.strip().removeprefix("@"), {p.name for p in people}, n=limit, cutoff=0.5)
    return sorted((p for p in people if p.name in names), key=lambda p: (names.index(p.name), p.unit_id))[:limit]


def unknown_person_text(session: Session, name: str, *, among: Iterable[str] | None = None) -> str:
    """「没有找到「王建图」。您是想写：王建国（总务基建处）吗？」, naming the closest people of the directory."""
    allowed = None if among is None else set(among)
    close = closest_people(session, name, among=allowed)
    if not close:
        return f"没有找到「{name}」，人员名单里没有相近的名字。"
    units = unit_names(session, {person.unit_id for person in close})
    choices = "、".join(f"{person.name}（{units.get(person.unit_id, person.unit_id)}）" for person in close)
    return f"没有找到「{name}」。您是想写：{choices}吗？"
