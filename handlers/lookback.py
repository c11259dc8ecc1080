"""回头看 (look-back campaigns, issue 16): 复查 closed hazards, 覆盖 of schools and buildings, 动态清零 by source,
and the 档案 check of closed hazards' records.

A look-back campaign names the campaigns it looks back on; what they closed is drawn for re-checking (every 重大
hazard and a share of the 一般 ones, reproducibly) the first time anyone asks for the 复查 list.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import date, timedelta

from sqlmodel import Session

from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import BuildingRef, Context
from handlers.directory import unit_names
from handlers.format import fmt_date
from handlers.messages import AlertLeaders, Outcome, Reply
from handlers.numbers import hazard_label, number_label, with_school_names
from handlers.photos import attach_pending_photos, has_pending_photos, photo_note, store_attachments
from models.ledger import next_hazard_number, record_event, school_of
from models.ids import stored_id
from models.lookback import (
    archive_gaps,
    coverage,
    draw_rechecks,
    missed_by_unit,
    open_by_origin,
    pending_recheck_counts,
    recheck_by_number,
    rechecks,
    three_look_answers,
    total_by_origin,
)
from models.tables import CampaignRow, Hazard, HazardStatus, LookbackAnswer, RecheckItem, RecheckStatus

log = logging.getLogger(__name__)

RECHECK_ROLES = frozenset({"unit_head", "safety_officer", "leader", "admin", "supervisor"})
ARCHIVE_ROLES = frozenset({"safety_officer", "leader", "admin", "supervisor"})
PASS_WORDS = ("合格", "通过", "已整改到位", "整改到位", "没问题", "无反弹", "正常")
REBOUND_WORDS = ("反弹", "不合格", "未整改到位", "问题仍在", "又出现", "复发")
_NUMBER = re.compile(r"^\s*(?:#|第)?\s*(\d{1,6})\s*号?")
LIST_LIMIT = 15

RECHECK_HELP = """回头看复查：前期已销号的隐患（全部重大隐患和按比例抽取的一般隐患）逐项复查。
复查            列出本群待复查的项目
复查 #3 合格     现场复查合格（需附现场照片时请连同照片发送）
复查 #3 反弹 灭火器又过期了   问题反弹：登记为新隐患，并与原隐患关联"""

COVERAGE_HELP = """排查覆盖：列出本次排查还没有检查过的学校和建筑单体（不漏一校、不漏一楼）。
覆盖
检查过、无隐患的建筑请发：检查 部位：实验楼 结果：无隐患"""

ZERO_HELP = """动态清零：各单位按来源（自查、县普查、市抽查、省督查、督查、审计、通报、复查）列出未销号的隐患，直到清零。
清零"""

ARCHIVE_HELP = """档案检查（学校领导、安全管理人员）：列出已销号但档案不完整的隐患
（缺整改前/后照片、无验收人、缺日期、整改人自己验收销号）。
档案"""


def _is_lookback(campaign: CampaignRow) -> bool:
    return campaign.kind == "lookback"


def _not_lookback_reply(context: Context) -> Reply:
    return Reply(f"「{context.campaign.name}」不是回头看活动，没有复查项目。回头看活动由管理员在配置中设置（kind = \"lookback\"）。")


def _schools(context: Context) -> list[str]:
    """The schools (units owning buildings) this chat covers, in config order."""
    allowed = permissions.chat_scope(context)
    seen: dict[str, None] = {}
    for building in context.policy.buildings:
        if allowed is None or building.unit_id in allowed:
            seen.setdefault(building.unit_id)
    return list(seen)


def _rechecks_ready(context: Context) -> list[RecheckItem] | None:
    """The look-back's 复查 items, drawn on first use once the look-back has started (None: not yet started)."""
    campaign = context.campaign
    if context.today < campaign.start:
        return None
    items, _ = draw_rechecks(context.session, campaign, now=context.now)
    return items


def handle_recheck(command: Command, context: Context) -> list[Reply] | Outcome:
    """复查: list the items, or record one as 合格 or 反弹 (a rebound opens a new hazard linked to the old one)."""
    if not _is_lookback(context.campaign):
        return [_not_lookback_reply(context)]
    items = _rechecks_ready(context)
    if items is None:
        return [Reply(f"回头看 {fmt_date(context.campaign.start)} 开始，开始后才能复查。")]
    text = (command.note or "").strip()
    number = command.hazard_no
    if number is None:
        match = _NUMBER.match(text)
        if match:
            number, text = int(match.group(1)), text[match.end():].strip()
    if number is None:
        return [_recheck_list(context)]
    found = recheck_by_number(context.session, context.campaign.id, number)
    visible = permissions.visible_units(context)
    if found is None or (visible is not None and found[0].unit_id not in visible):
        return [Reply(f"没有找到复查 #{number}。发「复查」可以看到本群待复查的项目，例如：复查 #1 合格")]
    item, old = found
    if item.status != RecheckStatus.PENDING.value:
        when = f"{item.checked_at:%m-%d}" if item.checked_at else ""
        return [Reply(f"复查 #{number} 已于{when}记为「{item.status_label}」，无需再复查。")]
    person = context.person
    if not person.role_set & RECHECK_ROLES or not (
        "supervisor" in person.role_set or permissions.in_scope(context.session, person, item.unit_id)
    ):
        return [Reply("复查结论由部门负责人、安全管理人员、校领导或督导组填写。请把复查情况告诉他们。")]
    verdict, note = _verdict(text)
    if verdict is None:
        return [Reply(f"请写明复查结论「合格」或「反弹」，例如：复查 #{number} 合格，或：复查 #{number} 反弹 灭火器又过期了")]
    if verdict == RecheckStatus.PASSED:
        return _passed(context, item, old, note)
    return _rebound(context, item, old, note)


def _verdict(text: str) -> tuple[RecheckStatus | None, str]:
    for word in REBOUND_WORDS:  # before 合格: 不合格 contains it
        if text.startswith(word):
            return RecheckStatus.REBOUND, text[len(word):].strip(" ，,：:")
    for word in PASS_WORDS:
        if text.startswith(word):
            return RecheckStatus.PASSED, text[len(word):].strip(" ，,：:")
    return None, text


def _passed(context: Context, item: RecheckItem, old: Hazard, note: str) -> list[Reply]:
    if context.campaign.recheck_photo and not context.attachments and not has_pending_photos(context):
        return [Reply(f"复查合格需附现场照片，没有记录。请连同照片再发一次，例如：复查 #{item.number} 合格（附照片）")]
    event = record_event(
        context.session, hazard=old, actor_id=context.person.id, action="recheck", at=context.now,
        detail=f"回头看复查合格（{context.campaign.name} 复查 #{item.number}）" + (f"：{note}" if note else ""),
    )
    photos = store_attachments(context, stored_id(old), stored_id(event))
    photos += attach_pending_photos(context, stored_id(old), stored_id(event))
    item.status, item.checked_at, item.checked_by, item.note = (
        RecheckStatus.PASSED.value, context.now, context.person.id, note,
    )
    context.session.add(item)
    lines = [f"已记录：复查 #{item.number} 合格（{old.location} {old.problem}）。复查人：{context.person.name}"]
    if photos:
        lines.append(photo_note(photos))
    return [Reply("\n".join(lines))]


def _rebound(context: Context, item: RecheckItem, old: Hazard, note: str) -> list[Reply] | Outcome:
    if not note:
        return [Reply(f"请写明反弹的情况，例如：复查 #{item.number} 反弹 灭火器又过期了")]
    session, campaign, today = context.session, context.campaign, context.today
    days = context.policy.major_deadline_days if old.level == "重大" else context.policy.general_deadline_days
    deadline = min(today + timedelta(days=days), max(campaign.end, today))
    school_id = _school(context, old.unit_id)  # numbers are per school within the campaign
    hazard = Hazard(
        campaign_id=campaign.id, number=next_hazard_number(session, campaign.id, school_id), school_id=school_id,
        unit_id=old.unit_id,
        location=old.location, check_item=old.check_item, problem=note, responsible_name=old.responsible_name,
        responsible_id=old.responsible_id, reporter_id=context.person.id, category=old.category, level=old.level,
        building_id=old.building_id, deadline=deadline, status=HazardStatus.RECTIFYING.value, found_at=context.now,
        remark=f"回头看复查反弹，原隐患 #{old.number}（{old.campaign_id}）", source_msg_id=context.inbound_id,
        origin="复查", origin_date=today, linked_hazard_id=old.id,
    )
    session.add(hazard)
    session.flush()
    event = record_event(session, hazard=hazard, actor_id=context.person.id, action="report", at=context.now,
                         detail=f"复查反弹：{hazard.location} {note}（原隐患 #{old.number}）")
    store_attachments(context, stored_id(hazard), stored_id(event))
    attach_pending_photos(context, stored_id(hazard), stored_id(event))
    record_event(session, hazard=old, actor_id=context.person.id, action="recheck", at=context.now,
                 detail=f"回头看复查反弹（{campaign.name} 复查 #{item.number}），新隐患 #{hazard.number}：{note}")
    item.status, item.checked_at, item.checked_by, item.note, item.new_hazard_id = (
        RecheckStatus.REBOUND.value, context.now, context.person.id, note, hazard.id,
    )
    session.add(item)
    who = hazard.responsible_name or "未指定"
    label = hazard_label(context, hazard)  # 城南小学#12 in a chat serving several schools
    lines = [
        f"复查 #{item.number} 反弹：已登记为新隐患 {label}（{hazard.level}），关联原隐患 {_old_name(context, old)}",
        f"部位：{hazard.location}",
        f"问题：{note}",
        f"责任人：{who}",
        f"期限：{fmt_date(deadline)}",
        f"整改完成后发「整改 {label} 说明」并附照片。",
    ]
    mentions = (hazard.responsible_id,) if hazard.responsible_id and hazard.responsible_id != context.person.id else ()
    replies = [Reply("\n".join(lines), mentions=mentions)]
    if hazard.level == "重大":
        return Outcome(replies, effects=(AlertLeaders(stored_id(hazard)),))
    return replies


def _old_name(context: Context, old: Hazard) -> str:
    """How a reply names a hazard of a looked-back campaign: 「冬春安全整治」#3; 「冬春安全整治」城关一中#3 in a chat
    serving several schools (numbers are per school)."""
    campaign = context.session.get(CampaignRow, old.campaign_id)
    label = number_label(context, old.school_id or _school(context, old.unit_id), old.number)
    return f"「{campaign.name if campaign else old.campaign_id}」{label}"


def origin_lines(context: Context, hazard: Hazard) -> list[str]:
    """查看 #N: where a finding came from and the closed hazard a rebound follows up (none for a plain 自查)."""
    session = context.session
    lines: list[str] = []
    if hazard.origin != "自查" or hazard.origin_date is not None:
        when = f"，{hazard.origin_date.isoformat()}发现" if hazard.origin_date else ""
        missed = "，学校自查未查出" if hazard.missed_by_school else ""
        lines.append(f"来源：{hazard.origin}{when}{missed}")
    if hazard.linked_hazard_id is not None:
        old = session.get(Hazard, hazard.linked_hazard_id)
        if old is not None:
            lines.append(f"关联：复查反弹，原隐患 {_old_name(context, old)}（{old.location} {old.problem}）")
    return lines


def _recheck_list(context: Context) -> Reply:
    visible = permissions.visible_units(context)
    rows = rechecks(context.session, context.campaign.id, unit_ids=visible)
    if not rows:
        return Reply("本群没有需要复查的项目（前期活动没有已销号的隐患被抽中）。")
    pending = [(item, hazard) for item, hazard in rows if item.status == RecheckStatus.PENDING.value]
    done = len(rows) - len(pending)
    names = unit_names(context.session, {item.unit_id for item, _ in pending})
    lines = [f"【回头看复查】共{len(rows)}项，已复查{done}项，待复查{len(pending)}项："]
    for item, hazard in pending[:LIST_LIMIT]:
        lines.append(f"复查 #{item.number} {names.get(item.unit_id, item.unit_id)} {hazard.location} {hazard.problem}"
                     f"（{hazard.level}，{hazard.closed_at:%Y-%m-%d}销号）")
    if len(pending) > LIST_LIMIT:
        lines.append(f"……另有{len(pending) - LIST_LIMIT}项")
    if pending:
        first = pending[0][0].number
        lines.append(f"现场复查后请发：复查 #{first} 合格（附照片），或：复查 #{first} 反弹 说明")
    else:
        lines.append("全部复查完毕 ✔")
    return Reply("\n".join(lines))



def open_recheck_lines(context: Context, units: set[str] | None, *, limit: int = LIST_LIMIT) -> list[str]:
    """清单 / 我的 in a look-back: the units' 复查 items not yet re-checked, after the hazards, marked 复查."""
    if not _is_lookback(context.campaign) or _rechecks_ready(context) is None:
        return []
    pending = rechecks(context.session, context.campaign.id, unit_ids=units, status=RecheckStatus.PENDING.value)
    if not pending:
        return []
    names = unit_names(context.session, {item.unit_id for item, _ in pending})
    lines = [f"待复查{len(pending)}项（前期已销号，回头看复查）："]
    for item, hazard in pending[:limit]:
        lines.append(f"复查 #{item.number} {names.get(item.unit_id, item.unit_id)} {hazard.location} {hazard.problem}"
                     f"（{hazard.level}，{hazard.closed_at:%Y-%m-%d}销号）")
    if len(pending) > limit:
        lines.append(f"……另有{len(pending) - limit}项，发「复查」查看全部。")
    first = pending[0][0].number
    lines.append(f"现场复查后请发：复查 #{first} 合格（附照片），或：复查 #{first} 反弹 说明")
    return lines

# -- 覆盖 ------------------------------------------------------------------------------------------------


def coverage_lines(
    session: Session, campaign: CampaignRow, *, schools: Sequence[str], buildings: Sequence[BuildingRef]
) -> list[str]:
    """The schools and buildings not yet checked in the campaign (for the 覆盖 reply and the leaders' digest)."""
    wanted = [b for b in buildings if b.unit_id in set(schools)]
    result = coverage(session, campaign.id, schools=schools, buildings=[(b.id, b.unit_id) for b in wanted])
    names = unit_names(session, schools)
    lines = [f"学校：已检查{len(schools) - len(result.unchecked_schools)}/{len(schools)}；"
             f"建筑单体：已检查{result.checked_buildings}/{result.buildings}"]
    if result.unchecked_schools:
        lines.append("未检查的学校：" + "、".join(names.get(s, s) for s in result.unchecked_schools))
    by_school: dict[str, list[str]] = {}
    unchecked = set(result.unchecked_buildings)
    for building in wanted:
        if building.id in unchecked:
            by_school.setdefault(building.unit_id, []).append(building.names[0])
    for school, missing in by_school.items():
        lines.append(f"未检查的建筑（{names.get(school, school)}）：" + "、".join(missing))
    return lines


def handle_coverage(command: Command, context: Context) -> list[Reply]:
    schools = _schools(context)
    if not schools:
        return [Reply("本群的单位还没有登记建筑单体，无法统计覆盖情况。请管理员在配置的 [[buildings]] 中登记。")]
    lines = [f"【排查覆盖】{context.campaign.name}"]
    lines += coverage_lines(context.session, context.campaign, schools=schools, buildings=context.policy.buildings)
    if len(lines) == 2:
        lines.append("所有学校和建筑单体都已检查 ✔")
    else:
        lines.append("检查过、没有隐患的建筑请发：检查 部位：实验楼 结果：无隐患")
    return [Reply("\n".join(lines))]


# -- 清零 ------------------------------------------------------------------------------------------------


def _origin_text(counts: dict[str, int]) -> str:
    return "、".join(f"{origin}{count}" for origin, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def missed_lines(session: Session, campaign: CampaignRow, *, scope: set[str] | None, schools: Sequence[str]) -> list[str]:
    """Per school, the findings its self-check missed (found by supervisors or inspections from above)."""
    missed = missed_by_unit(session, campaign.id, scope)
    if not missed:
        return []
    per_school: dict[str, int] = {}
    for unit, count in missed.items():
        school = school_of(session, unit, schools) if schools else unit
        per_school[school] = per_school.get(school, 0) + count
    names = unit_names(session, per_school)
    shown = "、".join(f"{names.get(s, s)}{n}项" for s, n in sorted(per_school.items(), key=lambda kv: (-kv[1], kv[0])))
    return [f"督查发现、自查未查出：{shown}"]


def zero_lines(session: Session, campaign: CampaignRow, *, scope: set[str] | None) -> list[str]:
    """动态清零: each unit's open findings by source, and the units already at zero."""
    open_counts = open_by_origin(session, campaign.id, scope)
    totals = total_by_origin(session, campaign.id, scope)
    still = sum(sum(counts.values()) for counts in open_counts.values())
    lines = [f"未销号{still}项（本次共登记{sum(totals.values())}项：{_origin_text(totals) or '无'}）"]
    names = unit_names(session, open_counts)
    order = sorted(open_counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
    for unit, counts in order[:LIST_LIMIT]:
        lines.append(f"· {names.get(unit, unit)} {sum(counts.values())}：{_origin_text(counts)}")
    if len(order) > LIST_LIMIT:
        lines.append(f"……另有{len(order) - LIST_LIMIT}个单位")
    return lines


def zero_chart(session: Session, campaign: CampaignRow, *, scope: set[str] | None) -> Reply | None:
    """The 动态清零 chart (open findings per unit by source) as an image reply; None when all is closed or on failure."""
    open_counts = open_by_origin(session, campaign.id, scope)
    if not open_counts:
        return None
    try:
        from handlers.charts import render_zero_chart

        names = unit_names(session, open_counts)
        rows = sorted(((names.get(u, u), c) for u, c in open_counts.items()), key=lambda r: (-sum(r[1].values()), r[0]))
        return Reply("动态清零图", image_png=render_zero_chart(f"动态清零：未销号{sum(sum(c.values()) for _, c in rows)}项", rows))
    except Exception:
        log.exception("清零 chart of %s failed; the text goes without it", campaign.id)
        return None


def handle_zero(command: Command, context: Context) -> list[Reply]:
    scope = permissions.visible_units(context)
    lines = [f"【动态清零】{context.campaign.name}"]
    lines += zero_lines(context.session, context.campaign, scope=scope)
    if lines[1].startswith("未销号0项"):
        lines.append("已全部清零 ✔")
    lines += missed_lines(context.session, context.campaign, scope=scope, schools=_schools(context))
    chart = zero_chart(context.session, context.campaign, scope=scope)
    return [Reply("\n".join(lines)), *([chart] if chart else [])]


# -- 档案 ------------------------------------------------------------------------------------------------


def audited_campaigns(campaign: CampaignRow) -> list[str]:
    """A look-back checks the record of what the campaigns it looks back on closed, and its own."""
    return [*campaign.looked_back, campaign.id]


def archive_lines(
    session: Session, campaign: CampaignRow, *, scope: set[str] | None, limit: int | None = LIST_LIMIT
) -> list[str]:
    gaps = archive_gaps(session, audited_campaigns(campaign), unit_ids=scope)
    if not gaps:
        return ["已销号隐患的档案完整 ✔"]
    lines = [f"已销号但档案不完整的隐患{len(gaps)}项："]
    shown = gaps if limit is None else gaps[:limit]
    listed = [gap.hazard for gap in shown]
    named = with_school_names(  # several schools' #3 in one list: 城南小学#3
        session, listed, [f"#{h.number} {h.location} {h.problem}：{'、'.join(gap.gaps)}" for h, gap in zip(listed, shown)]
    )
    for hazard, line in zip(listed, named):
        where = "" if hazard.campaign_id == campaign.id else f"{hazard.campaign_id} "
        lines.append(f"{where}{line}")
    if limit is not None and len(gaps) > limit:
        lines.append(f"……另有{len(gaps) - limit}项，完整清单请管理员运行 safetybot audit")
    return lines


def handle_archive(command: Command, context: Context) -> list[Reply]:
    if not context.person.role_set & ARCHIVE_ROLES:
        return [Reply("档案检查由校领导、安全管理人员或督导组查看。需要时请联系他们。")]
    lines = [f"【档案检查】{context.campaign.name}"]
    lines += archive_lines(context.session, context.campaign, scope=permissions.visible_units(context))
    return [Reply("\n".join(lines))]


# -- 三看 (seed 000) ---------------------------------------------------------------------------------------

THREE_LOOKS_HELP = """三看（回头看）：每所学校对以下各项回答一次「是」或「否」并说明，可更正。
三看            列出各项和本校的回答
三看 1 是 已明确各部门安全责任
三看 3 否 长效机制还在修订，4月底前完成"""
ANSWER_ROLES = frozenset({"unit_head", "safety_officer", "leader", "admin"})
_YES_NO = {"是": "是", "到位": "是", "已落实": "是", "否": "否", "未到位": "否", "不到位": "否", "未落实": "否"}


def _school(context: Context, unit_id: str) -> str:
    return school_of(context.session, unit_id, {b.unit_id for b in context.policy.buildings})


def handle_three_looks(command: Command, context: Context) -> list[Reply]:
    """三看: list the items and the school's answers, or record one answer (是/否 with a note) for the school."""
    campaign = context.campaign
    items = campaign.three_look_items
    if not _is_lookback(campaign) or not items:
        return [Reply(f"「{campaign.name}」没有设置三看项目（回头看活动的 three_looks）。")]
    text = (command.note or "").strip()
    match = _NUMBER.match(text)
    school = _school(context, context.person.unit_id)
    if match is None:
        return [_three_looks_list(context, items, school)]
    item, rest = int(match.group(1)), text[match.end():].strip()
    if not 1 <= item <= len(items):
        return [Reply(f"三看只有第1到第{len(items)}项，例如：三看 1 是 已明确各部门安全责任")]
    word = next((w for w in sorted(_YES_NO, key=len, reverse=True) if rest.startswith(w)), None)
    if word is None:
        return [Reply(f"请回答「是」或「否」并说明，例如：三看 {item} 是 已明确各部门安全责任")]
    note = rest[len(word):].strip(" ，,：:")
    if not note:
        return [Reply(f"请写上说明，例如：三看 {item} {_YES_NO[word]} 已明确各部门安全责任")]
    allowed = permissions.chat_scope(context)
    if not context.person.role_set & ANSWER_ROLES or (allowed is not None and school not in allowed):
        return [Reply("三看由本校的部门负责人、安全管理人员或校领导回答。请把情况告诉他们。")]
    existing = three_look_answers(context.session, campaign.id, [school]).get(school, {}).get(item)
    row = existing or LookbackAnswer(campaign_id=campaign.id, unit_id=school, item=item, answer="", person_id="",
                                     at=context.now)
    row.answer, row.note, row.person_id, row.at = _YES_NO[word], note, context.person.id, context.now
    context.session.add(row)
    name = unit_names(context.session, [school]).get(school, school)
    done = len(three_look_answers(context.session, campaign.id, [school]).get(school, {}) | {item: row})
    verb = "已更正" if existing else "已记录"
    return [Reply(f"{verb}：{name} 三看第{item}项「{items[item - 1]}」：{row.answer}，{note}。"
                  f"本校已回答{done}/{len(items)}项。")]


def _three_looks_list(context: Context, items: list[str], school: str) -> Reply:
    answers = three_look_answers(context.session, context.campaign.id, [school]).get(school, {})
    name = unit_names(context.session, [school]).get(school, school)
    lines = [f"【三看】{name}（已回答{len(answers)}/{len(items)}项）"]
    for number, text in enumerate(items, start=1):
        answer = answers.get(number)
        lines.append(f"{number}. {text}：" + (f"{answer.answer}，{answer.note}" if answer else "未回答"))
    lines.append("回答请发：三看 1 是 说明（或 三看 1 否 说明）")
    return Reply("\n".join(lines))


def three_look_lines(session: Session, campaign: CampaignRow, *, schools: Sequence[str]) -> list[str]:
    """The schools that have not answered every 三看 item (for the leaders' digest)."""
    items = campaign.three_look_items
    if not items or not schools:
        return []
    answers = three_look_answers(session, campaign.id, schools)
    missing = [s for s in schools if len(answers.get(s, {})) < len(items)]
    if not missing:
        return ["三看：各校已全部回答"]
    names = unit_names(session, missing)
    return ["三看未答完：" + "、".join(names.get(s, s) for s in missing)]


# -- digests ---------------------------------------------------------------------------------------------


def digest_lines(
    session: Session, campaign: CampaignRow, *, scope: set[str] | None, today: date, buildings: Sequence[BuildingRef]
) -> list[str]:
    """What the leaders' digest adds for a look-back: 复查 to do, coverage gaps, misses, 清零 by source."""
    if not _is_lookback(campaign) or today < campaign.start:
        return []
    lines: list[str] = []
    pending = sum(pending_recheck_counts(session, campaign.id, scope).values())
    if pending:
        lines.append(f"待复查{pending}项（发「复查」查看）")
    schools = [s for s in dict.fromkeys(b.unit_id for b in buildings) if scope is None or s in scope]
    if schools:
        covered = coverage_lines(session, campaign, schools=schools, buildings=buildings)
        lines.append("覆盖：" + covered[0])
        lines += covered[1:]
        lines += missed_lines(session, campaign, scope=scope, schools=schools)
        lines += three_look_lines(session, campaign, schools=schools)
    zero = zero_lines(session, campaign, scope=scope)
    lines.append("动态清零：" + zero[0])
    return lines


def reminder_lines(session: Session, campaign: CampaignRow, *, scope: set[str] | None) -> list[str]:
    """What reminders add for a look-back: the 复查 items still to do."""
    if not _is_lookback(campaign):
        return []
    pending = pending_recheck_counts(session, campaign.id, scope)
    if not pending:
        return []
    names = unit_names(session, pending)
    shown = "、".join(f"{names.get(u, u)}{n}" for u, n in sorted(pending.items(), key=lambda kv: (-kv[1], kv[0])))
    return [f"待复查{sum(pending.values())}项：{shown}（发「复查」查看）"]


RECHECK = CommandSpec(
    "recheck", ("复查", "回头看复查"), handle_recheck,
    usage="复查 #编号 合格/反弹", summary="回头看：复查前期已销号的隐患", help=RECHECK_HELP, example_tail=" #1 合格",
    everyday=False,
)
COVERAGE = CommandSpec(
    "coverage", ("覆盖", "覆盖情况", "排查覆盖"), handle_coverage,
    usage="覆盖", summary="还没检查的学校和建筑", help=COVERAGE_HELP, everyday=False,
)
ZERO = CommandSpec(
    "zero", ("清零", "动态清零", "清零情况"), handle_zero,
    usage="清零", summary="各单位按来源的未销号隐患", help=ZERO_HELP, everyday=False,
)
THREE_LOOKS = CommandSpec(
    "three_looks", ("三看",), handle_three_looks,
    usage="三看 1 是/否 说明", summary="回头看：本校回答三看（责任、查改、长效机制）", help=THREE_LOOKS_HELP,
    example_tail=" 1 是 已明确各部门安全责任", everyday=False,
)
ARCHIVE = CommandSpec(
    "archive", ("档案", "档案检查", "查档案"), handle_archive,
    usage="档案", summary="已销号隐患的档案缺项（领导）", help=ARCHIVE_HELP, everyday=False,
)
