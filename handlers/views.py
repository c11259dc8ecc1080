"""查看 / 我的 / 清单 / 进度: read-only answers about hazards and the campaign."""

from __future__ import annotations

from dataclasses import replace
from collections.abc import Collection
from datetime import date
from typing import TypedDict, Unpack


from handlers import permissions
from handlers.buttons import overdue_buttons
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.directory import find_unit, unit_names
from handlers.format import days_left_text, fmt_date, hazard_line
from handlers.lookback import RECHECK_ROLES, open_recheck_lines, origin_lines  # 回头看 (issue 16)
from handlers.messages import Reply
from handlers.numbers import find_hazard, hazard_label, named_lines
from models.ids import stored_id
from models.ledger import (
    descendants,
    hazard_events,
    total_figures,
    unit_figures,
)
from models.queries_ledger import hazard_photos, milestones, open_hazards, person_names, phases
from models.tables import Hazard, HazardStatus

HELP_SHOW = "查看隐患详情和处理记录：查看 #23（也可以只发 #23）"
HELP_MINE = "查看我负责或我上报、还没销号的隐患：我的"
HELP_LIST = "查看本单位未销号的隐患：清单（部门负责人可写 清单 单位：总务基建处）"
HELP_PROGRESS_REPORT = "查看排查整治活动的阶段、期限和总体进度：进度"

LIST_LIMIT = 15
ACTION_LABELS = {
    "report": "上报", "rectify": "报整改", "progress": "进展", "close": "销号",
    "reject": "退回", "extend": "延期", "withdraw": "撤销", "reopen": "重开", "transfer": "转交",
    "same": "同一隐患再报",
    "recheck": "复查", "import": "导入",  # 回头看 (issue 16)
}


def handle_show(command: Command, context: Context) -> list[Reply]:
    """查看 #N: details and the audit trail."""
    session = context.session
    hazard = find_hazard(command, context)
    if isinstance(hazard, Reply):
        return [hazard]
    unit = unit_names(session, [hazard.unit_id]).get(hazard.unit_id, hazard.unit_id)
    status = hazard.status_label
    if hazard.is_overdue(context.today):
        status += f"（{days_left_text(hazard.deadline, context.today)}）"
    photos = hazard_photos(session, stored_id(hazard))
    on_disk = [photo_id for photo_id, missing_since in photos if missing_since is None]
    lines = [
        f"隐患 {hazard_label(context, hazard)}｜{status}",
        f"部位：{hazard.location}",
        f"问题：{hazard.problem}",
        f"类别：{hazard.category}｜等级：{hazard.level}",
        f"单位：{unit}｜责任人：{hazard.responsible_name or '未指定'}",
        f"期限：{fmt_date(hazard.deadline)}",
    ]
    if hazard.measure:
        lines.append(f"措施：{hazard.measure}")
    if hazard.completion:
        lines.append(f"整改情况：{hazard.completion}")
    lines += origin_lines(context, hazard)  # 回头看 (issue 16): source, original date, the hazard it follows up
    if photos:
        not_saved = len(photos) - len(on_disk)
        lines.append(f"照片：{len(photos)}张" + (f"（{not_saved}张暂未保存）" if not_saved else ""))
        if context.photo_link is not None:  # a photo not on disk yet would only give a dead link
            lines += [f"  {context.photo_link(photo_id)}" for photo_id in on_disk[-4:]]
    events = hazard_events(session, stored_id(hazard))
    names = person_names(session, {e.actor_id for e in events})
    lines.append("处理记录：")
    for event in events[-8:]:
        when = event.at.astimezone(context.now.tzinfo)
        detail = f" {event.detail}" if event.detail and event.action != "report" else ""
        lines.append(f"· {when:%m-%d %H:%M} {names.get(event.actor_id, event.actor_id)} {ACTION_LABELS.get(event.action, event.action)}{detail}")
    if context.page_link is not None and hazard.id is not None:  # issue 15: the hazard's phone page
        lines.append(f"网页（照片和记录）：{context.page_link(hazard.id)}")
    return [Reply("\n".join(lines))]


class _Narrowing(TypedDict, total=False):
    """The narrowing keywords of models.queries_ledger.open_hazards that the list commands use."""

    also_units: Collection[str]
    person_id: str
    overdue_on: date
    level: str
    status: str


def _open_hazards(context: Context, **narrowed: Unpack[_Narrowing]) -> list[Hazard]:
    """Open hazards of the campaign within the units this chat serves (narrowed as models.queries_ledger.open_hazards)."""
    return open_hazards(context.session, context.campaign.id, units=permissions.chat_scope(context), **narrowed)


def _listing(title: str, hazards: list[Hazard], context: Context, empty: str) -> Reply:
    if not hazards:
        return Reply(f"{title}\n{empty}")
    overdue = sum(1 for h in hazards if h.is_overdue(context.today))
    waiting = sum(1 for h in hazards if h.status == "rectified")
    head = f"{title}（共{len(hazards)}条，逾期{overdue}条，待验收{waiting}条）"
    hazards.sort(key=lambda h: (not h.is_overdue(context.today), h.status != "rectified", h.deadline, h.number))
    shown = hazards[:LIST_LIMIT]
    lines = [head] + named_lines(context, shown, [hazard_line(h, context.today) for h in shown])
    if len(hazards) > LIST_LIMIT:
        lines.append(f"……还有{len(hazards) - LIST_LIMIT}条，发「台账」导出全部。")
    lines.append("发「查看 #编号」看详情。")
    return Reply("\n".join(lines))


def handle_mine(command: Command, context: Context) -> list[Reply]:
    """我的: open hazards I am responsible for or reported."""
    me = context.person.id
    hazards = _open_hazards(context, person_id=me)
    reply = _listing(f"{context.person.name}的待办", hazards, context, "没有未销号的隐患，辛苦了！")
    if context.person.role_set & RECHECK_ROLES:  # 回头看: the 复查 items this person may answer
        reply = _with_rechecks(reply, open_recheck_lines(context, permissions.visible_units(context)))
    return [reply]


def _with_rechecks(reply: Reply, lines: list[str]) -> Reply:
    """A list reply with the open 复查 items of a look-back after the hazards."""
    return replace(reply, text="\n".join([reply.text, *lines])) if lines else reply


def handle_list(command: Command, context: Context, *, overdue_only: bool = False) -> list[Reply]:
    """清单 [单位：X]: open hazards of the units I act for, within this chat's units; 逾期: only those past due."""
    session = context.session
    scope = permissions.visible_units(context)
    what = "逾期隐患" if overdue_only else "未销号隐患"
    narrowed: _Narrowing = {"overdue_on": context.today} if overdue_only else {}
    what = _narrowed(narrowed, what, command)
    if command.fields.unit:
        unit = find_unit(session, command.fields.unit, among=scope)
        if unit is None:
            return [Reply(f"没有找到您可查看的单位「{command.fields.unit}」。例如：清单 单位：总务基建处")]
        narrowed["also_units"] = descendants(session, [unit.id])
        title = f"{unit.name} {what}"
    else:
        if scope is not None:
            narrowed["also_units"] = scope
        title = _list_title(context, what)
    empty = "目前没有逾期隐患 ✔" if overdue_only else ("没有未销号的隐患。" if what == "未销号隐患" else f"没有{what}。")
    hazards = _open_hazards(context, **narrowed)
    reply = _listing(title, hazards, context, empty)
    if overdue_only and hazards:  # issue 15: 进展 / 申请延期 on the first items listed (sorted by _listing)
        reply = replace(reply, buttons=overdue_buttons([hazard_label(context, h) for h in hazards]))
    if what == "未销号隐患":  # 回头看: the units' open 复查 items follow (not for 逾期, 重大 or 待验收)
        units = narrowed.get("also_units", scope)
        reply = _with_rechecks(reply, open_recheck_lines(context, units if isinstance(units, set) else None))
    return [reply]


def _list_title(context: Context, what: str = "未销号隐患") -> str:
    """Name the list after the speaker's own scope when the chat covers it, else after the chat's units."""
    root = permissions.scope_root(context.session, context.person)
    chat = permissions.chat_scope(context)
    roots = [root] if root and (chat is None or root in chat) else (permissions.chat_roots(context) or [])
    names = unit_names(context.session, roots)
    shown = "、".join(names.get(unit, unit) for unit in roots[:3])
    return f"{shown} {what}" if shown else f"{what}清单"


def _narrowed(narrowed: _Narrowing, what: str, command: Command) -> str:
    """清单 重大 / 清单 待验收: only one level or one status (added to `narrowed`); returns the list's name."""
    if command.fields.level:
        narrowed["level"] = command.fields.level
        what = f"{command.fields.level}{what}" if what.startswith("逾期") else f"未销号{command.fields.level}隐患"
    if command.list_status:
        narrowed["status"] = command.list_status
        what = f"{HazardStatus(command.list_status).label}隐患"
    return what


def handle_progress_report(command: Command, context: Context) -> list[Reply]:
    """进度: where the campaign stands: phase, next deadlines, totals."""
    session, campaign, today = context.session, context.campaign, context.today
    phase_rows = phases(session, campaign.id)
    milestone_rows = milestones(session, campaign.id)
    lines = [f"{campaign.name}", f"时间：{campaign.start} 至 {campaign.end}"]
    if today < campaign.start:
        lines.append(f"活动将于{(campaign.start - today).days}天后开始。")
    elif today > campaign.end:
        lines.append("活动已结束。")
    else:
        lines.append(f"第{(today - campaign.start).days + 1}天，距结束还有{(campaign.end - today).days}天。")
    current = next((p for p in phase_rows if p.start <= today <= p.end), None)
    if current is not None:
        due = f"，{current.deliverable}" if current.deliverable else ""
        label = current.name if current.name.startswith("第") else f"第{current.seq}阶段 {current.name}"
        lines.append(f"当前阶段：{label}（至{current.end:%m-%d}{due}）")
    upcoming = [m for m in milestone_rows if m.due >= today][:2]
    for milestone in upcoming:
        lines.append(f"节点：{fmt_date(milestone.due)} {milestone.name}（{days_left_text(milestone.due, today)}）")
    if campaign.report_every_days and campaign.report_first and today >= campaign.report_first:
        period = (today - campaign.report_first).days // campaign.report_every_days
        from datetime import timedelta

        next_due = campaign.report_first + timedelta(days=(period + 1) * campaign.report_every_days)
        if next_due <= campaign.end:
            lines.append(f"下次报送：{fmt_date(next_due)}（每{campaign.report_every_days}天一次）")
    scope = permissions.visible_units(context)
    total = total_figures(unit_figures(session, campaign_id=campaign.id, unit_ids=scope, today=today).values())
    lines.append(
        f"累计发现{total.found}条，已销号{total.closed}条，未销号{total.outstanding}条"
        f"（逾期{total.overdue}条，重大{total.major}条）。"
    )
    return [Reply("\n".join(lines))]


SHOW = CommandSpec(
    "show", ("查看", "查询", "详情"), handle_show,
    usage="查看 #编号", summary="详情和处理记录", help=HELP_SHOW, example_tail=" #23", takes_number=True,
)
MINE = CommandSpec("mine", ("我的", "我的隐患"), handle_mine, usage="我的", summary="我的待办", help=HELP_MINE)
LIST = CommandSpec(
    "list", ("清单", "未整改", "隐患清单", "未整改清单"), handle_list,
    usage="清单", summary="本单位未销号隐患", help=HELP_LIST, example_tail=" 单位：教务处",
)
PROGRESS_REPORT = CommandSpec(
    "progress_report", ("进度",), handle_progress_report,
    usage="进度", summary="活动进度", help=HELP_PROGRESS_REPORT,
)
