"""The texts the campaign clock sends, composed from SQL aggregates at send time.

One compact message per group and push (the platforms allow 20 messages a minute per robot), short
lines that read on a phone, long lists cut with "……另有N项". Responsible people are @-mentioned
through Reply.mentions. A push with nothing to say (no overdue hazard, every unit reported) is
skipped with a reason instead of sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from handlers.directory import unit_names
from handlers.format import fmt_date, hazard_line
from handlers.messages import Reply
from handlers.periods import ReportingPeriod, report_days
from models.ledger import UnitFigures, descendants, total_figures, unit_figures
from models.tables import (
    OPEN_STATUSES,
    CampaignRow,
    DuePush,
    GroupRow,
    GroupUnit,
    Hazard,
    HazardStatus,
    PersonRow,
    Submission,
    UnitRow,
)
from scheduler.plan import days_left

log = logging.getLogger(__name__)

MAX_LINES = 12  # list lines per message, so a digest stays one screen on a phone


@dataclass(frozen=True, slots=True)
class ComposeSettings:
    """The [scheduler] switches that change what a message carries."""

    charts_in_digests: bool = True
    reminder_charts: bool = False


@dataclass(frozen=True, slots=True)
class Composed:
    """The replies to push, or why the push is skipped."""

    replies: tuple[Reply, ...] = ()
    skip_reason: str | None = None


# -- scope helpers ---------------------------------------------------------------------------------


def group_roots(session: Session, group_id: str) -> list[str]:
    """The units a group is configured with (roots of its scope)."""
    return sorted(session.exec(select(GroupUnit.unit_id).where(GroupUnit.group_id == group_id)))


def group_scope(session: Session, group_id: str) -> set[str] | None:
    """Every unit a group covers (None: all units)."""
    roots = group_roots(session, group_id)
    return descendants(session, roots) if roots else None


def _top_units(session: Session) -> list[str]:
    return sorted(session.exec(select(UnitRow.id).where(UnitRow.parent_id == None, UnitRow.active == True)))  # noqa: E711,E712


def reporting_units(session: Session, group: GroupRow) -> list[str]:
    """The units expected to 报送 for a group: a staff group's own units; for leaders, their staff groups' units."""
    roots = group_roots(session, group.id)
    if group.kind != "leaders":
        return roots or _top_units(session)
    scope = descendants(session, roots) if roots else None
    found: set[str] = set()
    staff_groups = session.exec(select(GroupRow).where(GroupRow.kind == "staff"))
    for staff in staff_groups:
        if group.campaign_id and staff.campaign_id not in (None, group.campaign_id):
            continue
        units = group_roots(session, staff.id) or _top_units(session)
        if scope is None or set(units) <= scope:
            found.update(units)
    return sorted(found) or roots or _top_units(session)


def _rolled_up(session: Session, figures: dict[str, UnitFigures], roots: Sequence[str]) -> dict[str, UnitFigures]:
    """Figures of each root unit summed over its subtree."""
    rolled = {}
    for root in roots:
        subtree = descendants(session, [root])
        total = total_figures(f for unit, f in figures.items() if unit in subtree)
        rolled[root] = UnitFigures(root, total.found, total.rectified, total.closed, total.outstanding, total.overdue, total.major)
    return rolled


def _cut(lines: list[str], unit: str = "项") -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return lines[: MAX_LINES - 1] + [f"……另有{len(lines) - MAX_LINES + 1}{unit}"]


def _open_hazards(session: Session, campaign_id: str, scope: set[str] | None) -> Any:
    statement = select(Hazard).where(Hazard.campaign_id == campaign_id, Hazard.status.in_(OPEN_STATUSES))  # type: ignore[attr-defined]
    if scope is not None:
        statement = statement.where(Hazard.unit_id.in_(scope))  # type: ignore[attr-defined]
    return statement


def _overdue(session: Session, campaign_id: str, scope: set[str] | None, today: date, min_days: int = 1) -> list[Hazard]:
    statement = _open_hazards(session, campaign_id, scope).where(
        Hazard.status == HazardStatus.RECTIFYING.value, Hazard.deadline <= today - timedelta(days=min_days)
    )
    return list(session.exec(statement.order_by(Hazard.deadline, Hazard.number)))


def _mentions(hazards: Iterable[Hazard]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(h.responsible_id for h in hazards if h.responsible_id))


def _submitters(session: Session, unit_ids: Iterable[str]) -> tuple[str, ...]:
    """Unit heads and safety officers who can 报送 for these units (so the reminder reaches them)."""
    wanted = set(unit_ids)
    people = []
    for person in session.exec(select(PersonRow).where(PersonRow.active == True).order_by(PersonRow.id)):  # noqa: E712
        roles = person.role_set
        if "unit_head" in roles and person.unit_id in wanted:
            people.append(person.id)
        elif "safety_officer" in roles:
            unit = session.get(UnitRow, person.unit_id)
            if unit is not None and (unit.parent_id or unit.id) in wanted:
                people.append(person.id)
    return tuple(people)


def _chart(session: Session, campaign: CampaignRow, scope: set[str] | None, now: datetime, name: str) -> Reply | None:
    """The outstanding-items chart as an image reply; a chart failure never stops the text."""
    try:
        from handlers.charts import render_outstanding_chart
        from models.reports import chart_data

        data = chart_data(session, campaign=campaign, unit_ids=scope, now=now, scope_name=name)
        return Reply("隐患统计图", image_png=render_outstanding_chart(data))
    except Exception:
        log.exception("chart for %s failed; sending the digest without it", name)
        return None


def _figure_text(f: UnitFigures) -> str:
    return f"新{f.found} 改{f.rectified} 销{f.closed}｜未销号{f.outstanding} 逾期{f.overdue} 重大{f.major}"


# -- the messages ----------------------------------------------------------------------------------


def report_reminder(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime,
                    settings: ComposeSettings) -> Composed:
    """第N期报送提醒: the group's units that have not submitted, with the period's figures per unit."""
    payload = json.loads(push.payload)
    tz = ZoneInfo(campaign.timezone)
    period = ReportingPeriod(date.fromisoformat(payload["period_start"]), date.fromisoformat(payload["period_due"]))
    units = reporting_units(session, group)
    submitted = set(
        session.exec(
            select(Submission.unit_id).where(
                Submission.campaign_id == campaign.id, Submission.period_due == period.due,
                Submission.unit_id.in_(units),  # type: ignore[attr-defined]
            )
        )
    )
    missing = [u for u in units if u not in submitted]
    if not missing:
        return Composed(skip_reason=f"every unit submitted period {period.due.isoformat()}")
    since, until = period.bounds(tz)
    today = now.astimezone(tz).date()
    figures = unit_figures(
        session, campaign_id=campaign.id, unit_ids=descendants(session, missing), today=today, since=since, until=until
    )
    rolled = _rolled_up(session, figures, missing)
    names = unit_names(session, units)
    when = (
        f"今天{campaign.report_at or ''}截止" if today == period.due
        else f"已于{period.due:%m-%d}截止，请尽快补报"
    )
    lines = [
        f"【报送提醒】{campaign.name}",
        f"第{payload['seq']}期（{period.start:%m-%d}至{period.due:%m-%d}）统计报表{when}。"
        "负责人在群里发「报送」即可。",
        f"未报送（{len(missing)}）：",
        *_cut([f"· {names.get(u, u)}：{_figure_text(rolled[u])}" for u in missing], "个单位"),
    ]
    if submitted:
        done = "、".join(names.get(u, u) for u in units if u in submitted)
        lines.append(f"已报送：{done}")
    replies = [Reply("\n".join(lines), mentions=_submitters(session, missing))]
    if settings.reminder_charts:
        chart = _chart(session, campaign, group_scope(session, group.id), now, group.name)
        if chart:
            replies.append(chart)
    return Composed(tuple(replies))


def _open_by_unit(session: Session, campaign: CampaignRow, scope: set[str] | None, today: date) -> list[str]:
    figures = unit_figures(session, campaign_id=campaign.id, unit_ids=scope, today=today)
    total = total_figures(figures.values())
    if not total.outstanding:
        return ["本群隐患已全部销号 ✔"]
    rows = sorted((f for f in figures.values() if f.outstanding), key=lambda f: (-f.overdue, -f.outstanding, f.unit_id))
    names = unit_names(session, [f.unit_id for f in rows])
    lines = [f"未销号{total.outstanding}项（逾期{total.overdue}，重大{total.major}）："]
    lines += _cut(
        [f"· {names.get(f.unit_id, f.unit_id)} {f.outstanding}" + (f"（逾期{f.overdue}）" if f.overdue else "")
         for f in rows],
        "个单位",
    )
    return lines


def deadline_nudge(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime) -> Composed:
    """Phase end or milestone ahead: what is still open in the group."""
    payload = json.loads(push.payload)
    tz = ZoneInfo(campaign.timezone)
    today = now.astimezone(tz).date()
    deadline = date.fromisoformat(payload["deadline"])
    left = days_left(deadline, today)
    if push.kind == "phase_nudge":
        head = f"【阶段提醒】{payload['name']}{deadline:%m-%d}结束（{left}）"
        lines = [head] + ([f"应完成：{payload['deliverable']}"] if payload.get("deliverable") else [])
    else:
        lines = [f"【节点提醒】{payload['name']}：{deadline:%m-%d}截止（{left}）"]
    lines += _open_by_unit(session, campaign, group_scope(session, group.id), today)
    return Composed((Reply("\n".join(lines)),))


def overdue_digest(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime) -> Composed:
    """逾期隐患: overdue hazards of the group's units, @-mentioning the responsible people."""
    payload = json.loads(push.payload)
    today = now.astimezone(ZoneInfo(campaign.timezone)).date()
    escalated_only = bool(payload.get("escalated_only"))
    min_days = max(1, int(payload.get("escalate_after_days", 3))) if escalated_only else 1
    hazards = _overdue(session, campaign.id, group_scope(session, group.id), today, min_days)
    if not hazards:
        return Composed(skip_reason="nothing overdue" + (f" for {min_days}+ days" if escalated_only else ""))
    if escalated_only:
        head = f"【逾期升级】逾期满{min_days}天的隐患{len(hazards)}项，请督办："
    else:
        head = f"【逾期隐患】截至{today:%m-%d}共{len(hazards)}项，请责任人尽快整改，完成后发「整改 #序号」："
    lines = [head, *_cut([hazard_line(h, today) for h in hazards])]
    unassigned = sum(1 for h in hazards if not h.responsible_id)
    if unassigned:
        lines.append(f"其中{unassigned}项责任人不在名单中，请部门负责人跟进。")
    return Composed((Reply("\n".join(lines), mentions=_mentions(hazards)),))


def leader_digest(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime,
                  settings: ComposeSettings) -> Composed:
    """领导日报/周报: totals, overdue by unit, escalations, units not reported, major hazards, a chart."""
    payload = json.loads(push.payload)
    tz = ZoneInfo(campaign.timezone)
    local = now.astimezone(tz)
    today = local.date()
    scope = group_scope(session, group.id)
    figures = unit_figures(session, campaign_id=campaign.id, unit_ids=scope, today=today)
    total = total_figures(figures.values())
    title = "领导周报" if payload.get("cadence") == "weekly" else "领导日报"
    lines = [
        f"【{title}】{campaign.name} {local:%m-%d}",
        f"合计：发现{total.found}｜已销号{total.closed}｜未销号{total.outstanding}｜逾期{total.overdue}｜重大{total.major}",
    ]
    overdue_units = sorted((f for f in figures.values() if f.overdue), key=lambda f: (-f.overdue, f.unit_id))
    if overdue_units:
        names = unit_names(session, [f.unit_id for f in overdue_units])
        shown = "、".join(f"{names.get(f.unit_id, f.unit_id)}{f.overdue}" for f in overdue_units[:8])
        lines.append(f"逾期：{shown}" + (f" 等{len(overdue_units)}个单位" if len(overdue_units) > 8 else ""))
    escalate = max(1, int(payload.get("escalate_after_days", 3)))
    escalated = _overdue(session, campaign.id, scope, today, escalate)
    if escalated:
        lines.append(f"逾期满{escalate}天（{len(escalated)}项）：")
        lines += _cut([hazard_line(h, today) for h in escalated])
    days = [d for d in report_days(campaign) if d <= today]
    if days:
        due = days[-1]
        units = reporting_units(session, group)
        submitted = set(
            session.exec(
                select(Submission.unit_id).where(Submission.campaign_id == campaign.id, Submission.period_due == due)
            )
        )
        missing = [u for u in units if u not in submitted]
        names = unit_names(session, units)
        if missing:
            lines.append(f"第{len(days)}期（截至{due:%m-%d}）未报送：" + "、".join(names.get(u, u) for u in missing))
        else:
            lines.append(f"第{len(days)}期（截至{due:%m-%d}）已全部报送")
    majors = list(
        session.exec(_open_hazards(session, campaign.id, scope).where(Hazard.level == "重大").order_by(Hazard.deadline))
    )
    if majors:
        lines.append(f"重大隐患（{len(majors)}项）：")
        lines += _cut([hazard_line(h, today) for h in majors])
    replies = [Reply("\n".join(lines))]
    if settings.charts_in_digests and total.found:
        chart = _chart(session, campaign, scope, now, group.name)
        if chart:
            replies.append(chart)
    return Composed(tuple(replies))


def major_alert(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime) -> Composed:
    """重大隐患: sent to the leaders at once when a 重大 hazard is reported."""
    hazard = session.get(Hazard, json.loads(push.payload).get("hazard_id"))
    if hazard is None or hazard.status == HazardStatus.WITHDRAWN.value:
        return Composed(skip_reason="hazard withdrawn before the alert went out")
    today = now.astimezone(ZoneInfo(campaign.timezone)).date()
    unit = unit_names(session, [hazard.unit_id]).get(hazard.unit_id, hazard.unit_id)
    reporter = session.get(PersonRow, hazard.reporter_id)
    found = hazard.found_at.astimezone(ZoneInfo(campaign.timezone))
    lines = [
        f"【重大隐患】#{hazard.number} {hazard.location}",
        f"问题：{hazard.problem}",
        f"单位：{unit}｜责任人：{hazard.responsible_name or '未指定'}",
        f"期限：{fmt_date(hazard.deadline)}，{days_left(hazard.deadline, today).replace('截止', '到期')}",
        f"上报：{reporter.name if reporter else hazard.reporter_id} {found:%m-%d %H:%M}｜状态：{hazard.status_label}",
        f"请校领导督办。查看详情发「查看 #{hazard.number}」。",
    ]
    return Composed((Reply("\n".join(lines)),))


def compose(session: Session, push: DuePush, *, now: datetime, settings: ComposeSettings) -> Composed:
    """The message(s) for one due push, from the database as it is now."""
    campaign = session.get(CampaignRow, push.campaign_id)
    group = session.get(GroupRow, push.group_id)
    if campaign is None or group is None:
        return Composed(skip_reason=f"campaign {push.campaign_id} or group {push.group_id} no longer exists")
    if push.kind == "report_reminder":
        return report_reminder(session, push, campaign, group, now, settings)
    if push.kind in ("phase_nudge", "milestone_nudge"):
        return deadline_nudge(session, push, campaign, group, now)
    if push.kind == "overdue_digest":
        return overdue_digest(session, push, campaign, group, now)
    if push.kind == "leader_digest":
        return leader_digest(session, push, campaign, group, now, settings)
    if push.kind == "major_alert":
        return major_alert(session, push, campaign, group, now)
    return Composed(skip_reason=f"unknown push kind {push.kind!r}")
