"""隐患: a teacher reports a hazard; the bot numbers it (#N), stores it and echoes what it understood."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.dates import beyond_campaign_error
from handlers.directory import (
    example_unit,
    find_building,
    find_people,
    find_unit,
    pick_person,
    scope_words,
    unit_names,
    unknown_person_text,
)
from handlers.format import fmt_date
from handlers.messages import AlertLeaders, Outcome, Reply
from handlers.photos import attach_pending_photos, pending_note, photo_note, store_attachments
from handlers.understand import doubts_reply
from models.ledger import next_hazard_number, record_event, school_of
from models.tables import Hazard, HazardStatus, PersonRow

HELP = """上报隐患：@安全助手 后发送（每项一行，也可用「，」「；」隔开）
隐患
部位：3号教学楼二楼东侧
问题：消防通道堆放杂物
类别：消防（可不写，自动判断）
等级：一般（或 重大）
责任人：王建国
期限：12月10日（也可写 本周五、3天内、月底）
可选：单位、整改措施、检查内容、立即整改：是/否、停用：是/否；可附现场照片。"""


def _unknown_owner(context: Context, name: str) -> Reply:
    """A 责任人 not in the directory: nothing is filed (it would land under the wrong unit); name the closest."""
    among = permissions.chat_scope(context)
    return Reply(
        f"{unknown_person_text(context.session, name, among=among)}这条隐患没有登记，"
        "请改正「责任人」后重新发送，例如：责任人：王建国（不确定时可不写责任人，写「单位：总务基建处」）"
    )


def handle_report(command: Command, context: Context) -> list[Reply] | Outcome:
    """Create a ledger row with the next number of the campaign; a 重大 one also alerts the leaders."""
    fields = command.fields
    session, person, today = context.session, context.person, context.today
    allowed_units = permissions.chat_scope(context)

    unit = None
    if fields.unit:
        unit = find_unit(session, fields.unit, among=allowed_units)
        if unit is None:
            return [_unknown_unit_reply(context, fields.unit, allowed_units)]

    responsible = None
    notes: list[str] = []
    if fields.responsible:
        candidates = find_people(session, fields.responsible)
        # A namesake in another school is no candidate while this chat has one of its own.
        candidates = [p for p in candidates if allowed_units is None or p.unit_id in allowed_units] or candidates
        prefer = [unit.id] if unit else list(allowed_units or [person.unit_id])
        responsible = pick_person(candidates, prefer_units=prefer)
        if responsible is None and candidates:
            notes.append(f"有{len(candidates)}位「{fields.responsible}」，请在「单位」中写明是哪个部门的。")
        elif responsible is None and not command.doubts:  # plain words: the doubts reply below asks about it
            return [_unknown_owner(context, fields.responsible)]
    if responsible is not None and allowed_units is not None and responsible.unit_id not in allowed_units:
        return [Reply(
            f"「{responsible.name}」不属于{scope_words(context)}，这条隐患没有登记。"
            f"请写{scope_words(context)}的责任人，例如：责任人：{_example_person(context, allowed_units)}"
        )]

    if unit is None:
        unit_id = responsible.unit_id if responsible else person.unit_id
    else:
        unit_id = unit.id
    doubts = list(command.doubts)
    if command.plain and fields.deadline is not None and fields.deadline > context.campaign.end:
        doubts.append("after_campaign")
    if doubts:  # read from plain words and unsure: show it back to confirm, store nothing
        return [Reply(doubts_reply(fields, doubts))]
    if allowed_units is not None and unit_id not in allowed_units:
        return [Reply(
            f"您的单位不属于{scope_words(context)}，这条隐患没有登记。"
            f"请在「单位」中写明{scope_words(context)}的部门，例如：单位：{example_unit(context, allowed_units)}"
        )]

    level = fields.level or "一般"
    if fields.deadline is not None:
        deadline = fields.deadline
        deadline_note = ""
        beyond = beyond_campaign_error(deadline, campaign_end=context.campaign.end, today=today, example="期限：{date}")
        if beyond is not None:
            return [Reply(beyond)]
    else:
        days = 0 if fields.immediate else (
            context.policy.major_deadline_days if level == "重大" else context.policy.general_deadline_days
        )
        deadline = today + timedelta(days=days)
        deadline_note = "（立即整改）" if fields.immediate else f"（未写期限，按{level}隐患默认{days}天）"
    if deadline < today:
        return [Reply(f"期限 {fmt_date(deadline)} 已经过去，请写今天或以后的日期，例如：期限：本周五")]

    building = find_building(session, fields.location or "", context.policy.buildings, unit_id=unit_id)
    # Numbers are per school within the campaign: #12 in a school's group is that school's 12.
    school_id = school_of(session, unit_id, {b.unit_id for b in context.policy.buildings})
    number = next_hazard_number(session, context.campaign.id, school_id)
    hazard = Hazard(
        campaign_id=context.campaign.id,
        number=number,
        school_id=school_id,
        unit_id=unit_id,
        location=fields.location or "",
        check_item=fields.check_item or "",
        problem=fields.problem or "",
        measure=fields.measure or "",
        responsible_name=(responsible.name if responsible else (fields.responsible or "")),
        responsible_id=responsible.id if responsible else None,
        reporter_id=person.id,
        category=fields.category or "其他",
        level=level,
        building_id=building.id if building else None,
        immediate=bool(fields.immediate),
        closed_building=bool(fields.closed_building),
        deadline=deadline,
        status=HazardStatus.RECTIFYING.value,
        found_at=context.now,
        remark=command.note or "",
        source_msg_id=context.inbound_id,
    )
    session.add(hazard)
    session.flush()
    event = record_event(
        session, hazard=hazard, actor_id=person.id, action="report", at=context.now,
        detail=f"上报：{hazard.location} {hazard.problem}",
    )
    photos = store_attachments(context, hazard.id, event.id)  # type: ignore[arg-type]
    earlier = attach_pending_photos(context, hazard.id, event.id)  # type: ignore[arg-type]

    unit_name = unit_names(session, [unit_id]).get(unit_id, unit_id)
    lines = [
        f"已登记隐患 #{number}（{level}·{hazard.category}）" + ("，按您的原话理解如下" if command.plain else ""),
        f"部位：{hazard.location}",
        f"问题：{hazard.problem}",
        f"责任人：{hazard.responsible_name or '未指定'}（{unit_name}）",
        f"期限：{fmt_date(deadline)}{deadline_note}",
    ]
    if hazard.measure:
        lines.append(f"措施：{hazard.measure}")
    if photos:
        lines.append(photo_note(photos))
    if earlier:
        lines.append(pending_note(earlier))
    if level == "重大":
        lines.append("⚠ 重大隐患：将报校领导跟踪督办。")
    lines += notes
    lines.append(f"下一步：整改完成后发「整改 #{number} 说明」并附照片。")
    mentions = (responsible.id,) if responsible and responsible.id != person.id else ()
    replies = [Reply("\n".join(lines), mentions=mentions)]
    if level == "重大":  # leaders hear of it within seconds, whatever the hour: safety first
        return Outcome(replies, effects=(AlertLeaders(hazard.id),))  # type: ignore[arg-type]
    return replies


def _unknown_unit_reply(context: Context, typed: str, allowed: set[str] | None) -> Reply:
    """单位 names no unit this chat serves: say whether it exists elsewhere, and what may be written."""
    example = f"例如：单位：{example_unit(context, allowed)}"
    if allowed is not None and find_unit(context.session, typed) is not None:
        return Reply(f"「{typed}」不属于{scope_words(context)}，这条隐患没有登记。请写{scope_words(context)}的部门，{example}")
    choices = "、".join(sorted(unit_names(context.session, allowed or ()).values())[:8])
    hint = f"可用的单位有：{choices}。" if choices else ""
    return Reply(f"没有找到单位「{typed}」。{hint}请改正后重新发送，{example}")


def _example_person(context: Context, allowed: set[str]) -> str:
    """A person's name the speaker may really use here: themselves, else someone of the chat's units."""
    if context.person.unit_id in allowed:
        return context.person.name
    statement = select(PersonRow.name).where(
        PersonRow.unit_id.in_(allowed), PersonRow.active == True  # type: ignore[attr-defined]  # noqa: E712
    )
    someone = context.session.exec(statement.order_by(PersonRow.id)).first()
    return someone or "王建国"


SPEC = CommandSpec(
    "report",
    ("隐患", "上报", "报告", "隐患上报", "上报隐患", "报告隐患", "隐患报告", "发现隐患", "报隐患", "新隐患", "重大隐患",
     "一般隐患"),
    handle_report,
    usage="隐患", summary="上报隐患（可附照片）", help=HELP, example_tail=" 部位：3号教学楼二楼东侧，问题：消防通道堆放杂物",
)
