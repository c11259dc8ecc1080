"""Finding people, units and buildings from the names teachers type."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlmodel import Session, select

from handlers.context import BuildingRef
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


def find_building(location: str, buildings: Sequence[BuildingRef], *, among: Iterable[str] | None = None) -> BuildingRef | None:
    """The building a location names (longest matching name wins: 1号教学楼 before 教学楼)."""
    allowed = None if among is None else set(among)
    best: tuple[int, BuildingRef] | None = None
    for building in buildings:
        if allowed is not None and building.unit_id not in allowed:
            continue
        for name in building.names:
            if name and name in location and (best is None or len(name) > best[0]):
                best = (len(name), building)
    return best[1] if best else None


def unit_names(session: Session, unit_ids: Iterable[str]) -> dict[str, str]:
    ids = list(unit_ids)
    if not ids:
        return {}
    return {unit.id: unit.name for unit in session.exec(select(UnitRow).where(UnitRow.id.in_(ids)))}  # type: ignore[attr-defined]
