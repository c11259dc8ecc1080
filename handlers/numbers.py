"""Which hazard `#N` means in a chat: numbers are per school within a campaign.

`#12` in a school's group is that school's 12. A chat that sees several schools' #12 (a county group)
asks which one, and `城南小学#12` names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlmodel import Session

from handlers import permissions
from handlers.command import Command
from handlers.context import Context
from handlers.messages import Reply
from models.ledger import hazards_by_number, school_of
from models.queries_directory import unit_names
from models.queries_escalation import units_by_id
from models.tables import Hazard


def _school_names(context: Context, school_ids: set[str]) -> dict[str, tuple[str, ...]]:
    """Each school's name and aliases, the name first."""
    if not school_ids:
        return {}
    rows = units_by_id(context.session, school_ids).values()
    return {row.id: (row.name, *[a for a in row.aliases.split("|") if a]) for row in rows}


class Numbered(Protocol):
    """A hazard as its label needs it: a stored row, or one just filed (models.ledger.NewHazard)."""

    @property
    def number(self) -> int: ...

    @property
    def school_id(self) -> str | None: ...


def hazard_label(context: Context, hazard: Numbered) -> str:
    """#12 where the chat serves one school; 城南小学#12 where it serves several (a county chat)."""
    return number_label(context, hazard.school_id, hazard.number)


def number_label(context: Context, school_id: str | None, number: int) -> str:
    """hazard_label of the hazard numbered `number` in school `school_id`."""
    roots = permissions.chat_roots(context)
    schools = {building.unit_id for building in context.policy.buildings}
    if school_id is None or (roots is not None and len(roots) == 1 and roots[0] in schools):
        return f"#{number}"
    if roots is not None and school_id in roots:
        return f"#{number}"
    if roots and all(school_of(context.session, root, schools) == school_id for root in roots):
        return f"#{number}"  # a department's group: within one school
    name = _school_names(context, {school_id}).get(school_id, (school_id,))[0]
    return f"{name}#{number}"


def names_school(context: Context, hazard: Hazard, wanted: str) -> bool:
    """Whether `wanted` (as typed before `#N`) names the hazard's school, by name or alias, as find_hazard reads it."""
    if not hazard.school_id:
        return False
    names = _school_names(context, {hazard.school_id}).get(hazard.school_id, ())
    return any(wanted == name or wanted in name for name in names)


def find_hazard(command: Command, context: Context) -> Hazard | Reply:
    """The hazard `#N` (or `学校#N`) means here, if the person may see it; else the reply saying why not."""
    number = command.hazard_no or 0
    typed = f"{command.hazard_school or ''}#{number}"
    candidates = hazards_by_number(context.session, context.campaign.id, number)
    if command.hazard_school:
        names = _school_names(context, {h.school_id for h in candidates if h.school_id})
        wanted = command.hazard_school
        candidates = [
            h for h in candidates
            if h.school_id and any(wanted == name or wanted in name for name in names.get(h.school_id, ()))
        ]
    visible = [h for h in candidates if permissions.can_see(context, h)]
    if len(visible) == 1:
        return visible[0]
    if not visible:
        return Reply(f"没有找到隐患 {typed}。请核对编号，发「清单」可查看本单位未销号的隐患。")
    names = _school_names(context, {h.school_id for h in visible if h.school_id})
    labels = [f"{names.get(h.school_id, (h.school_id,))[0]}#{number}" for h in visible if h.school_id]
    return Reply(
        f"这里有{len(visible)}所学校的 #{number}：{'、'.join(labels)}。请写明学校，例如：查看 {labels[0]}"
    )


def with_school_names(session: Session, hazards: Sequence[Hazard], lines: Sequence[str], *, always: bool = False) -> list[str]:
    """List lines (`#12 …`, one per hazard, in order) as `城南小学#12 …` when the hazards come from several
    schools, where a bare number would be ambiguous, or `always` (a chat that serves several schools);
    unchanged otherwise."""
    schools = {h.school_id for h in hazards if h.school_id}
    if not schools or (len(schools) < 2 and not always):
        return list(lines)
    names = unit_names(session, schools)
    return [
        f"{names.get(h.school_id, h.school_id)}{line}" if h.school_id and line.startswith(f"#{h.number}") else line
        for h, line in zip(hazards, lines)
    ]


def named_lines(context: Context, hazards: Sequence[Hazard], lines: Sequence[str]) -> list[str]:
    """with_school_names for a reply in this chat: a chat serving several schools names the school even when
    the list holds one school's hazards (its bare #12 would be asked about)."""
    schools = {h.school_id for h in hazards if h.school_id}
    always = len(schools) == 1 and hazard_label(context, hazards[0]) != f"#{hazards[0].number}"
    return with_school_names(context.session, hazards, lines, always=always)
