"""Who may see and do what (谁发现、谁督促、谁销号).

Scope: everyone acts within the subtree of their own unit, except that a safety officer
(安全保卫处) serves the whole unit above their department and an admin sees everything.

On top of that, every command is bounded by the chat it came from (`chat_scope`): a group's units
and their subtrees, or in a private chat the sender's school. An admin in one school's group sees
that school only, and nothing of one school is ever answered into another school's chat.
"""

from __future__ import annotations

from sqlmodel import Session

from handlers.context import Context
from models.ids import stored_id
from models.ledger import descendants, hazard_events, school_of
from models.tables import Hazard, HazardStatus, PersonRow, UnitRow

VERIFIER_ROLES = frozenset({"unit_head", "safety_officer", "leader", "admin"})
EXTEND_ROLES = frozenset({"unit_head", "leader", "admin"})
SUBMIT_ROLES = frozenset({"unit_head", "safety_officer", "leader", "admin"})


def scope_root(session: Session, person: PersonRow) -> str | None:
    """The unit whose subtree the person acts for (None: everything)."""
    if "admin" in person.role_set:
        return None
    if "safety_officer" in person.role_set:
        unit = session.get(UnitRow, person.unit_id)
        if unit is not None and unit.parent_id is not None:
            return unit.parent_id
    return person.unit_id


def scope_units(session: Session, person: PersonRow) -> set[str] | None:
    """Unit ids the person may see; None means all."""
    root = scope_root(session, person)
    return None if root is None else descendants(session, [root])


def in_scope(session: Session, person: PersonRow, unit_id: str) -> bool:
    units = scope_units(session, person)
    return units is None or unit_id in units


def chat_roots(context: Context) -> list[str] | None:
    """The units the chat serves: the group's configured units, or the sender's school in a private chat.

    None: a group configured without units, which serves every unit.
    """
    if context.group is not None:
        return sorted(context.group_unit_ids) or None
    schools = {building.unit_id for building in context.policy.buildings}
    return [school_of(context.session, context.person.unit_id, schools)]


def chat_scope(context: Context) -> set[str] | None:
    """Every unit a command from this chat may read or change (None: all units)."""
    if context.group is not None:
        return set(context.group_scope) if context.group_unit_ids else None
    return descendants(context.session, chat_roots(context) or ())


def visible_units(context: Context) -> set[str] | None:
    """The units whose hazards the speaker may list here: their own scope within the chat's scope."""
    chat = chat_scope(context)
    own = scope_units(context.session, context.person)
    if chat is None or own is None:
        return own if chat is None else chat
    return chat & own


def _acts_for(session: Session, person: PersonRow, hazard: Hazard) -> bool:
    """The person reported the hazard, is responsible for it, or acts for its unit."""
    return person.id in (hazard.reporter_id, hazard.responsible_id) or in_scope(session, person, hazard.unit_id)


def can_see(context: Context, hazard: Hazard) -> bool:
    """Within the chat's scope: own scope, own reports and tasks, or anything of the group one belongs to."""
    chat = chat_scope(context)
    if chat is not None and hazard.unit_id not in chat:
        return False
    if _acts_for(context.session, context.person, hazard):
        return True
    group = context.group_scope
    return bool(group) and hazard.unit_id in group and context.person.unit_id in group


def can_rectify(session: Session, person: PersonRow, hazard: Hazard) -> bool:
    """The responsible person, the finder, or anyone acting for the hazard's unit."""
    return _acts_for(session, person, hazard)


def can_verify(session: Session, person: PersonRow, hazard: Hazard) -> bool:
    """销号 / 退回: the finder, or a unit head, safety officer or leader over the hazard's unit."""
    if person.role_set & VERIFIER_ROLES and in_scope(session, person, hazard.unit_id):
        return True
    return person.id == hazard.reporter_id


def can_close_unrectified(session: Session, person: PersonRow, hazard: Hazard) -> bool:
    """Closing straight from 整改中 (seen fixed on site) is for verifier roles only, not the finder."""
    return bool(person.role_set & VERIFIER_ROLES) and in_scope(session, person, hazard.unit_id)


def fixed_it(person: PersonRow, hazard: Hazard, rectifier_id: str | None) -> bool:
    """Whether the person reported the fix or answers for it (责任人): they may not verify it themselves."""
    return person.id in (hazard.responsible_id, rectifier_id)


def rectifier_of(session: Session, hazard: Hazard) -> str | None:
    """Who reported the fix now awaiting verification (None while still 整改中)."""
    if hazard.status != HazardStatus.RECTIFIED.value:
        return None
    rectify_events = [e for e in hazard_events(session, stored_id(hazard)) if e.action == "rectify"]
    return rectify_events[-1].actor_id if rectify_events else None


def can_override(person: PersonRow) -> bool:
    """A leader may close their own fix, or without the required photo; the history records it."""
    return "leader" in person.role_set


def can_extend(session: Session, person: PersonRow, hazard: Hazard) -> bool:
    return bool(person.role_set & EXTEND_ROLES) and in_scope(session, person, hazard.unit_id)


def is_open(hazard: Hazard) -> bool:
    return hazard.status in (HazardStatus.RECTIFYING.value, HazardStatus.RECTIFIED.value)


TRANSFER_ROLES = frozenset({"unit_head", "safety_officer", "leader", "admin"})


def can_transfer(session: Session, person: PersonRow, hazard: Hazard) -> bool:
    """转交 (a new 责任人): a unit head, safety officer or leader over the hazard's unit."""
    return bool(person.role_set & TRANSFER_ROLES) and in_scope(session, person, hazard.unit_id)
