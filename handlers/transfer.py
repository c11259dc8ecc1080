"""转交: a unit head, the safety officer or a leader gives a hazard a new 责任人 (and the new owner's unit)."""

from __future__ import annotations

import re

from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.directory import find_people, find_unit, school_units, unit_names, unknown_person_text
from handlers.format import days_left_text, fmt_date
from handlers.messages import Reply
from handlers.numbers import find_hazard, hazard_label
from models.ledger import record_event
from models.tables import Hazard, HazardStatus, PersonRow

HELP = "更换责任人：转交 #23 王建国（也可写 #23 转给王建国，或 #23 责任人：王建国；部门负责人、安全员或校领导可以转交）"

# 转交 #23 给王建国 / 转交 #23 由王建国负责: the little words around the name are not part of it.
_NAME_PREFIX = re.compile(r"^(?:给|为|到|由|改为|改成|换成)\s*")
_NAME_SUFFIX = re.compile(r"(?:负责|整改|处理)$")
_WORD_SPLIT = re.compile(r"[\s，,；;。、]+")


def _new_owner_name(command: Command) -> tuple[str, str]:
    """(the name as typed, the rest of the note as the reason) from 责任人：… or the free text."""
    if command.fields.responsible:
        return command.fields.responsible.strip().removeprefix("@"), (command.note or "").strip()
    words = _WORD_SPLIT.split(_NAME_PREFIX.sub("", (command.note or "").strip()), maxsplit=1)
    name = _NAME_SUFFIX.sub("", words[0]).removeprefix("@")
    return name, (words[1] if len(words) > 1 else "").strip()


def _load(command: Command, context: Context) -> Hazard | Reply:
    """The open hazard #N the person may see, else the reply saying why not."""
    hazard = find_hazard(command, context)
    if isinstance(hazard, Reply):
        return hazard
    if hazard.status in (HazardStatus.CLOSED.value, HazardStatus.WITHDRAWN.value):
        return Reply(f"隐患 {hazard_label(context, hazard)} {hazard.status_label}，不需要再转交。")
    return hazard


def _same_school(context: Context, hazard: Hazard) -> set[str]:
    """The units a new owner may come from: the hazard's school, within what this group serves."""
    units = school_units(context, hazard.unit_id)
    return units & set(context.group_scope) if context.group_scope else units


def _find_owner(context: Context, command: Command, name: str, among: set[str], number: str) -> PersonRow | Reply:
    """The one person of the school with this name (narrowed by 单位：…), else a reply naming the choices."""
    candidates = [person for person in find_people(context.session, name) if person.unit_id in among]
    if command.fields.unit:
        unit = find_unit(context.session, command.fields.unit, among=among)
        candidates = [person for person in candidates if unit is not None and person.unit_id == unit.id]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        return Reply(f"{unknown_person_text(context.session, name, among=among)}请改正后重新发送，例如：转交 {number} 王建国")
    units = unit_names(context.session, {person.unit_id for person in candidates})
    choices = "、".join(f"{person.name}（{units.get(person.unit_id, person.unit_id)}）" for person in candidates)
    example = f"转交 {number} {name} 单位：{units[candidates[0].unit_id]}"
    return Reply(f"有{len(candidates)}位「{name}」：{choices}。请写明部门，例如：{example}")


def handle_transfer(command: Command, context: Context) -> list[Reply]:
    """转交 #N 姓名: record the new owner (and move the hazard to their unit within the same school)."""
    hazard = _load(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    session, person = context.session, context.person
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    if not permissions.can_transfer(session, person, hazard):
        return [Reply(f"只有部门负责人、安全员或校领导可以转交隐患 {label}。请联系他们发「转交 {label} 姓名」。")]
    name, reason = _new_owner_name(command)
    if not name:
        return [Reply(f"请写上新的责任人，例如：转交 {label} 王建国")]
    owner = _find_owner(context, command, name, _same_school(context, hazard), label)
    if isinstance(owner, Reply):
        return [owner]
    if owner.id == hazard.responsible_id:
        return [Reply(f"{owner.name}已经是隐患 {label} 的责任人，无需转交。")]

    units = unit_names(session, {hazard.unit_id, owner.unit_id})
    old_owner = hazard.responsible_name or "未指定"
    changes = [f"责任人 {old_owner} → {owner.name}"]
    if owner.unit_id != hazard.unit_id:
        changes.append(f"单位 {units[hazard.unit_id]} → {units[owner.unit_id]}")
        hazard.unit_id = owner.unit_id
    hazard.responsible_id, hazard.responsible_name = owner.id, owner.name
    record_event(
        session, hazard=hazard, actor_id=person.id, action="transfer", at=context.now,
        detail="；".join([*changes, *([reason] if reason else [])]),
    )
    lines = [
        f"隐患 {label} 已转交 {owner.name}（{units[owner.unit_id]}）负责。",
        f"{hazard.location} {hazard.problem}".strip(),
        "变更：" + "；".join(changes),
        f"期限 {fmt_date(hazard.deadline)}，{days_left_text(hazard.deadline, context.today)}。",
        f"请{owner.name}整改后发「整改 {label} 说明」。",
    ]
    if reason:
        lines.insert(3, f"原因：{reason}")
    return [Reply("\n".join(lines), mentions=(owner.id,))]


SPEC = CommandSpec(
    "transfer", ("转交", "转给", "移交", "更换责任人", "变更责任人", "改责任人"), handle_transfer,
    usage="转交 #编号 姓名", summary="更换责任人", help=HELP, example_tail=" #23 王建国", takes_number=True,
    everyday=False,
)
