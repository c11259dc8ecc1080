"""The texts the campaign clock sends, composed from SQL aggregates at send time.

One compact message per group and push (the platforms allow 20 messages a minute per robot), short
lines that read on a phone, long lists cut with "……另有N项". Responsible people are @-mentioned
through Reply.mentions. A push with nothing to say (no overdue hazard, every unit reported) is
skipped with a reason instead of sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from handlers.context import BuildingRef
from handlers.directory import unit_names
from handlers.lookback import digest_lines as lookback_digest_lines, reminder_lines as lookback_reminder_lines
from handlers.lookback import zero_chart as lookback_zero_chart
from handlers.format import fmt_date, hazard_line
from handlers.messages import Reply
from handlers.periods import ReportingPeriod, report_days
from models import queries_directory, queries_escalation, queries_ledger
from models.ledger import UnitFigures, descendants, parent_chains, school_of, subtrees, total_figures, unit_figures
from models.tables import (
    CampaignRow,
    DuePush,
    GroupRow,
    Hazard,
    HazardStatus,
    PersonRow,
)
from handlers.numbers import with_school_names
from handlers.supervision import SupervisionSheet, supervision_file_name, supervision_workbook
from models.config import EscalationStep
from scheduler.escalation import (
    GroupReach,
    LadderHazard,
    climbs,
    deadline_range,
    step_title,
    steps_from_payload,
    supervision_due,
)
from scheduler.plan import days_left

log = logging.getLogger(__name__)

MAX_LINES = 12  # list lines per message, so a digest stays one screen on a phone


@dataclass(frozen=True, slots=True)
class ComposeSettings:
    """The [scheduler] switches that change what a message carries."""

    charts_in_digests: bool = True
    reminder_charts: bool = False
    buildings: tuple[BuildingRef, ...] = ()  # 回头看 coverage in the leaders' digest (issue 16)
    supervision: bool = True  # a 重大 alert carries the 督办单 (XLSX)
    supervision_every_days: int = 10
    schools: frozenset[str] = frozenset()  # units owning buildings (handlers.directory.school_of)
    # Issue 15: the signed link to a leaders' group's page (by group id), handed in by bot/ when links are on.
    leader_page_link: Callable[[str], str] | None = None


@dataclass(frozen=True, slots=True)
class Composed:
    """The replies to push, or why the push is skipped."""

    replies: tuple[Reply, ...] = ()
    skip_reason: str | None = None


# -- scope helpers ---------------------------------------------------------------------------------


def group_roots(session: Session, group_id: str) -> list[str]:
    """The units a group is configured with (roots of its scope)."""
    return sorted(queries_directory.group_unit_ids(session, group_id))


def _roots_of(session: Session, group_ids: Iterable[str]) -> dict[str, list[str]]:
    """group_roots() of many groups in one query (groups without units are left out)."""
    return queries_directory.group_unit_ids_of(session, group_ids)


def group_scope(session: Session, group_id: str) -> set[str] | None:
    """Every unit a group covers (None: all units)."""
    roots = group_roots(session, group_id)
    return descendants(session, roots) if roots else None


def _top_units(session: Session) -> list[str]:
    return queries_directory.top_unit_ids(session)


def reporting_units(session: Session, group: GroupRow) -> list[str]:
    """The units expected to 报送 for a group: a staff group's own units; for leaders, their staff groups' units."""
    roots = group_roots(session, group.id)
    if group.kind != "leaders":
        return roots or _top_units(session)
    scope = descendants(session, roots) if roots else None
    # Every staff group's units in one query: a county has hundreds of staff groups.
    staff, staff_roots = queries_directory.staff_groups(session)
    found: set[str] = set()
    top_units: set[str] | None = None
    for staff_id, campaign_id in staff:
        if group.campaign_id and campaign_id not in (None, group.campaign_id):
            continue
        units = staff_roots.get(staff_id)
        if not units:
            top_units = set(_top_units(session)) if top_units is None else top_units
            units = top_units
        if scope is None or units <= scope:
            found.update(units)
    return sorted(found) or roots or _top_units(session)


def _rolled_up(figures: dict[str, UnitFigures], trees: dict[str, set[str]]) -> dict[str, UnitFigures]:
    """Figures of each root unit summed over its subtree."""
    rolled = {}
    for root, subtree in trees.items():
        total = total_figures(figures[unit] for unit in subtree if unit in figures)
        rolled[root] = UnitFigures(root, total.found, total.rectified, total.closed, total.outstanding, total.overdue, total.major)
    return rolled


def _cut(lines: list[str], unit: str = "项") -> list[str]:
    if len(lines) <= MAX_LINES:
        return lines
    return lines[: MAX_LINES - 1] + [f"……另有{len(lines) - MAX_LINES + 1}{unit}"]


@dataclass(frozen=True, slots=True)
class _Overdue:
    """Overdue hazards, most overdue first: how many, the ones a message lists, who is responsible."""

    count: int
    listed: list[Hazard]  # the first MAX_LINES (all a message can show)
    mentions: tuple[str, ...]  # responsible people, each once, in list order
    unassigned: int  # hazards with no responsible person on file
    ids: frozenset[int] = frozenset()  # every hazard counted


def _overdue(session: Session, campaign_id: str, scope: set[str] | None, today: date, min_days: int = 1,
             leave_out: Collection[int] = ()) -> _Overdue:
    """`leave_out`: hazards (ids) another message of the day already lists (the escalation ladder's)."""
    # A school can have hundreds overdue: fetch (id, responsible) pairs for all, whole rows only for the listed.
    pairs, listed = queries_ledger.overdue_hazards(
        session, campaign_id, scope, due_on_or_before=today - timedelta(days=min_days),
        listed=MAX_LINES + len(leave_out),
    )
    if leave_out:
        pairs = [row for row in pairs if row[0] not in leave_out]
        listed = [h for h in listed if h.id not in leave_out][:MAX_LINES]
    return _Overdue(
        count=len(pairs),
        listed=listed,
        mentions=tuple(dict.fromkeys(row[1] for row in pairs if row[1])),
        unassigned=sum(1 for row in pairs if not row[1]),
        ids=frozenset(row[0] for row in pairs),
    )


def _beyond_school(session: Session, group: GroupRow, school_id: str | None) -> bool:
    """Whether the group serves more than this school (a county's group), where its bare #12 is ambiguous."""
    if school_id is None:
        return False
    roots = group_roots(session, group.id)
    return not roots or not set(roots) <= descendants(session, [school_id])


def _school_named(session: Session, group: GroupRow | None, hazards: Sequence[Hazard], lines: Sequence[str]) -> list[str]:
    """List lines as `城南小学#12 …` where the numbers would be ambiguous in the group (see with_school_names)."""
    schools = {h.school_id for h in hazards if h.school_id}
    always = group is not None and len(schools) == 1 and _beyond_school(session, group, next(iter(schools)))
    return with_school_names(session, hazards, lines, always=always)


def _hazard_lines(hazards: Sequence[Hazard], count: int, today: date, session: Session | None = None,
                  group: GroupRow | None = None) -> list[str]:
    """The first of `count` hazards as list lines, cut like _cut (only the lines shown are formatted)."""
    shown = hazards if count <= MAX_LINES else hazards[: MAX_LINES - 1]
    lines = [hazard_line(h, today) for h in shown]
    if session is not None:  # several schools' #12 in one list, or a county's group: 城南小学#12
        lines = _school_named(session, group, shown, lines)
    return lines if count <= MAX_LINES else lines + [f"……另有{count - MAX_LINES + 1}项"]


def _submitters(session: Session, unit_ids: Iterable[str]) -> list[tuple[str, frozenset[str]]]:
    """Unit heads and safety officers who can 报送 for these units, in id order, each with the units they cover."""
    wanted = set(unit_ids)
    # Only people of these units or of their sub-units can qualify (looked up by index, not everyone).
    people = []
    for person_id, roles, unit_id, parent_id in queries_ledger.people_of_units(session, wanted):
        role_set = roles.split(",")
        covers = {unit_id} if "unit_head" in role_set else set()
        if "safety_officer" in role_set:
            covers.add(parent_id or unit_id)
        if covers & wanted:
            people.append((person_id, frozenset(covers & wanted)))
    return people


def chart_scope_name(session: Session, group_id: str) -> str:
    """Whose hazards a group's chart shows: its schools (or county) by name, never the chat group's own name."""
    roots = group_roots(session, group_id) or _top_units(session)
    names = unit_names(session, roots)
    shown = [names.get(root, root) for root in roots]
    return "、".join(shown[:3]) + (f"等{len(shown)}个单位" if len(shown) > 3 else "")


def _chart(
    session: Session, campaign: CampaignRow, scope: set[str] | None, now: datetime, group_id: str
) -> Reply | None:
    """The outstanding-items chart as an image reply; a chart failure never stops the text."""
    name = chart_scope_name(session, group_id)
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


@dataclass(frozen=True, slots=True)
class _Reminder:
    """One report reminder being composed: its push, the period, the group's units and who has not submitted."""

    push: DuePush
    campaign: CampaignRow
    group: GroupRow
    seq: int
    period: ReportingPeriod
    units: list[str]
    missing: list[str]


def report_reminders(session: Session, items: Sequence[tuple[DuePush, CampaignRow, GroupRow]], now: datetime,
                     settings: ComposeSettings) -> list[Composed]:
    """第N期报送提醒 for each push: the group's units that have not submitted, with the period's figures per unit.

    Thousands of staff groups are reminded in the same minute, so the reminders share their queries
    (each query covers every push) instead of running a dozen queries per group.
    """
    roots = _roots_of(session, [group.id for _, _, group in items if group.kind != "leaders"])
    top_units: list[str] | None = None
    drafts: list[tuple[DuePush, CampaignRow, GroupRow, int, ReportingPeriod, list[str]]] = []
    for push, campaign, group in items:
        payload = json.loads(push.payload)
        period = ReportingPeriod(date.fromisoformat(payload["period_start"]), date.fromisoformat(payload["period_due"]))
        if group.kind == "leaders":
            units = reporting_units(session, group)
        elif group.id in roots:
            units = roots[group.id]
        else:
            top_units = _top_units(session) if top_units is None else top_units
            units = top_units
        drafts.append((push, campaign, group, int(payload["seq"]), period, units))
    # A 报送 by any unit counts for the units above it (a department's 报送 is its school's).
    trees = subtrees(session, {unit for *_, units in drafts for unit in units})
    submitted = queries_ledger.submissions_among(
        session,
        {campaign.id for _, campaign, *_ in drafts},
        {period.due for *_, period, _ in drafts},
        set().union(*trees.values()),
    )
    reminders = [
        _Reminder(push, campaign, group, seq, period, units,
                  [u for u in units if not any((campaign.id, period.due, s) in submitted for s in trees[u])])
        for push, campaign, group, seq, period, units in drafts
    ]
    missing = {unit for r in reminders for unit in r.missing}
    # Figures per (campaign, period, day): normally one query for the whole batch.
    wanted: dict[tuple[str, datetime, datetime, date], set[str]] = {}
    for r in reminders:
        tz = ZoneInfo(r.campaign.timezone)
        wanted.setdefault((r.campaign.id, *r.period.bounds(tz), now.astimezone(tz).date()), set()).update(
            *(trees[u] for u in r.missing)
        )
    figures = {
        key: unit_figures(session, campaign_id=key[0], unit_ids=units, today=key[3], since=key[1], until=key[2])
        for key, units in wanted.items() if units
    }
    names = unit_names(session, {unit for r in reminders for unit in r.units})
    people = _submitters(session, missing) if missing else []
    return [_reminder_text(session, r, figures, trees, names, people, now, settings) for r in reminders]


def _reminder_text(session: Session, r: _Reminder, figures: dict[tuple[str, datetime, datetime, date], dict[str, UnitFigures]],
                   trees: dict[str, set[str]], names: dict[str, str], people: list[tuple[str, frozenset[str]]],
                   now: datetime, settings: ComposeSettings) -> Composed:
    """One reminder's message from the figures, names and people report_reminders fetched for the batch."""
    campaign, period = r.campaign, r.period
    if not r.missing:
        return Composed(skip_reason=f"every unit submitted period {period.due.isoformat()}")
    tz = ZoneInfo(campaign.timezone)
    today = now.astimezone(tz).date()
    rolled = _rolled_up(figures[(campaign.id, *period.bounds(tz), today)], {u: trees[u] for u in r.missing})
    deadline_at = json.loads(r.push.payload).get("deadline_at") or campaign.report_at or ""
    if today < period.due:
        ahead = (period.due - today).days
        when = f"{'明天' if ahead == 1 else f'{period.due:%m-%d}'}{deadline_at}截止（还有{ahead}天）"
    elif today == period.due:
        when = f"今天{deadline_at}截止"
    else:
        when = f"已于{period.due:%m-%d}截止，请尽快补报"
    lines = [
        f"【报送提醒】{campaign.name}",
        f"第{r.seq}期（{period.start:%m-%d}至{period.due:%m-%d}）统计报表{when}。"
        "负责人在群里发「报送」即可。",
        f"未报送（{len(r.missing)}）：",
        *_cut([f"· {names.get(u, u)}：{_figure_text(rolled[u])}" for u in r.missing], "个单位"),
    ]
    submitted = [u for u in r.units if u not in r.missing]
    if submitted:
        lines.append(f"已报送：{'、'.join(names.get(u, u) for u in submitted)}")
    mentions = tuple(person for person, covers in people if not covers.isdisjoint(r.missing))
    replies = [Reply("\n".join(lines), mentions=mentions)]
    if settings.reminder_charts:
        chart = _chart(session, campaign, group_scope(session, r.group.id), now, r.group.id)
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
    lines += lookback_reminder_lines(session, campaign, scope=group_scope(session, group.id))
    return Composed((Reply("\n".join(lines)),))


def overdue_digest(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime) -> Composed:
    """逾期隐患: overdue hazards of the group's units, @-mentioning the responsible people."""
    payload = json.loads(push.payload)
    today = now.astimezone(ZoneInfo(campaign.timezone)).date()
    escalated_only = bool(payload.get("escalated_only"))
    min_days = max(1, int(payload.get("escalate_after_days", 3))) if escalated_only else 1
    # With an escalation ladder, what the ladder announces in this group today is left to its message.
    announced = _ladder_announced(session, payload["ladder"], campaign, group, today) if "ladder" in payload else set()
    overdue = _overdue(session, campaign.id, group_scope(session, group.id), today, min_days, announced)
    if not overdue.count:
        if announced:
            return Composed(skip_reason="every overdue hazard is in today's escalation message")
        return Composed(skip_reason="nothing overdue" + (f" for {min_days}+ days" if escalated_only else ""))
    if escalated_only:
        head = f"【逾期升级】逾期满{min_days}天的隐患{overdue.count}项，请督办："
    else:
        head = f"【逾期隐患】截至{today:%m-%d}共{overdue.count}项，请责任人尽快整改，完成后发「整改 #序号」："
    if announced:
        head += f"\n（另有{len(announced)}项今日逾期升级另行通报）"
    lines = [head, *_hazard_lines(overdue.listed, overdue.count, today, session, group)]
    if overdue.unassigned:
        lines.append(f"其中{overdue.unassigned}项责任人不在名单中，请部门负责人跟进。")
    return Composed((Reply("\n".join(lines), mentions=overdue.mentions),))


def _escalated_lines(session: Session, payload: Mapping[str, Any], campaign: CampaignRow, group: GroupRow,
                     scope: set[str] | None, today: date) -> list[str]:
    """The overdue hazards the leaders should hear of by name. With the escalation ladder's steps heard in the
    group (payload "steps"), each is listed under the highest of them it has reached (a step is reached on
    its day, `after_days + 1` days overdue), so the digest never contradicts the ladder; without, those
    overdue for `escalate_after_days` days."""
    steps = steps_from_payload(payload)
    if not steps:
        escalate = max(1, int(payload.get("escalate_after_days", 3)))
        escalated = _overdue(session, campaign.id, scope, today, escalate)
        if not escalated.count:
            return []
        return [f"逾期满{escalate}天（{escalated.count}项）：", *_hazard_lines(escalated.listed, escalated.count, today, session, group)]
    lines: list[str] = []
    higher: set[int] = set()  # hazards listed under a higher step
    for after_days in sorted({step.after_days for step in steps}, reverse=True):
        names = "、".join(dict.fromkeys(step.name for step in steps if step.after_days == after_days))
        reached = _overdue(session, campaign.id, scope, today, after_days + 1, higher)
        if reached.count:
            lines.append(f"已升级至{names}（逾期满{after_days + 1}天，{reached.count}项）：")
            lines += _hazard_lines(reached.listed, reached.count, today, session, group)
        higher |= reached.ids
    return lines


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
    lines += _escalated_lines(session, payload, campaign, group, scope, today)
    days = [d for d in report_days(campaign) if d <= today]
    if days:
        due = days[-1]
        units = reporting_units(session, group)
        submitted = queries_ledger.submitted_units(session, campaign.id, due)
        # A 报送 by any unit counts for the units above it (a department's 报送 is its school's).
        trees = subtrees(session, units)
        missing = [u for u in units if submitted.isdisjoint(trees[u])]
        names = unit_names(session, units)
        if missing:
            lines.append(f"第{len(days)}期（截至{due:%m-%d}）未报送：" + "、".join(names.get(u, u) for u in missing))
        else:
            lines.append(f"第{len(days)}期（截至{due:%m-%d}）已全部报送")
    majors = queries_ledger.open_hazards(session, campaign.id, units=scope, level="重大", order_by_deadline=True)
    if majors:
        lines.append(f"重大隐患（{len(majors)}项）：")
        lines += _hazard_lines(majors, len(majors), today, session, group)
    lines += lookback_digest_lines(session, campaign, scope=scope, today=today, buildings=settings.buildings)
    if settings.leader_page_link is not None:  # issue 15: the outstanding items, chart and filters on a phone page
        lines.append(f"网页（清单、统计图、筛选）：{settings.leader_page_link(group.id)}")
    replies = [Reply("\n".join(lines))]
    if settings.charts_in_digests and total.found:
        chart = _chart(session, campaign, scope, now, group.id)
        if chart:
            replies.append(chart)
    if settings.charts_in_digests and campaign.kind == "lookback":  # 回头看 (issue 16): 动态清零 by source
        zero = lookback_zero_chart(session, campaign, scope=scope)
        if zero:
            replies.append(zero)
    return Composed(tuple(replies))


def _reaches(session: Session, campaign_id: str) -> list[GroupReach]:
    """The groups working on a campaign (or on none in particular), with their configured units."""
    roots = queries_escalation.units_per_group(session)
    return [
        GroupReach(g.id, g.kind, frozenset(roots[g.id]) if g.id in roots else None)
        for g in queries_escalation.groups_in_id_order(session)
        if g.campaign_id in (None, campaign_id)
    ]


def _ladder(hazard: Hazard, chain: Sequence[str]) -> LadderHazard:
    assert hazard.id is not None
    return LadderHazard(hazard.id, hazard.number, hazard.campaign_id, tuple(chain), hazard.deadline, hazard.level,
                        status=hazard.status)


def _step_mentions(session: Session, reached: Sequence[tuple[Hazard, EscalationStep]],
                   chains: dict[str, list[str]]) -> tuple[str, ...]:
    """Who each (hazard, step) @-mentions: its responsible person, the nearest people of a role, named people."""
    units = {unit for chain in chains.values() for unit in chain}
    people = queries_escalation.active_people_in_units(session, units)
    found: list[str] = []
    for hazard, step in reached:
        chain = chains.get(hazard.unit_id, [hazard.unit_id])
        for who in step.mention:
            if who == "responsible":
                found += [hazard.responsible_id] if hazard.responsible_id else []
            elif any(p.id == who for p in people):
                found += [p.id for p in people if p.id == who and p.unit_id in chain]
            else:
                for unit in chain:  # the nearest unit that has such people
                    holders = sorted(p.id for p in people if p.unit_id == unit and who in p.role_set)
                    if holders:
                        found += holders
                        break
    return tuple(dict.fromkeys(found))


MAX_CATCH_UP = timedelta(days=14)


def _since_missed(session: Session, push: DuePush, first: date) -> date:
    """Where an escalation push's window starts: its planned start, or earlier when the pushes before it were
    missed (the bot was down past the grace window), so no step is lost; from the day after the last one
    composed (sent, or skipped with nothing to say), at most MAX_CATCH_UP back."""
    earlier = queries_escalation.pushes_before(session, push, push.due_at - MAX_CATCH_UP)
    for row in earlier:
        if not row.reason.startswith("missed"):
            return min(first, date.fromisoformat(json.loads(row.payload)["day"]) + timedelta(days=1))
        first = min(first, date.fromisoformat(json.loads(row.payload)["first"]))
    return first


def _ladder_reached(session: Session, campaign: CampaignRow, group: GroupRow, steps: Sequence[EscalationStep],
                    first: date, last: date, today: date) -> tuple[list[tuple[Hazard, EscalationStep]], dict[str, list[str]]] | None:
    """The (hazard, step) pairs of the group's overdue hazards that reach a step heard in it within [first, last],
    and the hazards' unit chains; None when the group does not work on the campaign."""
    deadlines = deadline_range(steps, first, last)
    if deadlines is None:
        return [], {}
    scope = group_scope(session, group.id)
    hazards = queries_escalation.rectifying_due_between(
        session, campaign.id, scope, deadlines[0], min(deadlines[1], today - timedelta(days=1))
    )
    chains = parent_chains(session, {h.unit_id for h in hazards})
    reaches = _reaches(session, campaign.id)
    reach = next((r for r in reaches if r.id == group.id), None)
    if reach is None:
        return None
    reached = [
        (hazard, step) for hazard in hazards
        for step in climbs(_ladder(hazard, chains[hazard.unit_id]), steps, reach, reaches, first, last)
    ]
    return reached, chains


def _ladder_announced(session: Session, ladder: Mapping[str, Any], campaign: CampaignRow, group: GroupRow,
                      today: date) -> set[int]:
    """Ids of the hazards today's escalation message in this group lists (the overdue digest leaves them out)."""
    found = _ladder_reached(session, campaign, group, steps_from_payload(ladder), date.fromisoformat(ladder["first"]),
                            today, today)
    return {hazard.id for hazard, _ in found[0] if hazard.id is not None} if found else set()


def escalation(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime) -> Composed:
    """逾期升级: the group's overdue hazards that reached a step of the ladder since the last workday, in one message."""
    payload = json.loads(push.payload)
    steps = steps_from_payload(payload)
    first, last = date.fromisoformat(payload["first"]), date.fromisoformat(payload["day"])
    first = _since_missed(session, push, first)
    today = now.astimezone(ZoneInfo(campaign.timezone)).date()
    if not steps:
        return Composed(skip_reason="no escalation steps for this group")
    found = _ladder_reached(session, campaign, group, steps, first, last, today)
    if found is None:
        return Composed(skip_reason=f"group {group.id} does not work on campaign {campaign.id}")
    reached, chains = found
    by_step: dict[int, list[Hazard]] = {}
    for hazard, step in reached:
        by_step.setdefault(steps.index(step), []).append(hazard)
    if not reached:
        return Composed(skip_reason="no overdue hazard reached an escalation step")
    lines = [f"【逾期升级】{campaign.name} {today:%m-%d}", "以下隐患逾期未整改，按规定逐级上报："]
    for index in sorted(by_step, key=lambda i: -steps[i].after_days):
        listed = by_step[index]
        lines.append(f"{step_title(steps[index])}{len(listed)}项：")
        lines += _hazard_lines(listed, len(listed), today, session, group)
    lines.append("请督促责任人尽快整改，完成后发「整改 #序号」；确需延期请部门负责人发「延期 #序号 日期 原因」。")
    return Composed((Reply("\n".join(lines), mentions=_step_mentions(session, reached, chains)),))


def supervision(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow,
                      now: datetime) -> Composed:
    """督办复查: 挂牌督办 (重大) hazards not yet closed whose every-N-days check falls since the last workday."""
    payload = json.loads(push.payload)
    first, last = date.fromisoformat(payload["first"]), date.fromisoformat(payload["day"])
    every = int(payload.get("every_days", 10))
    tz = ZoneInfo(campaign.timezone)
    today = now.astimezone(tz).date()
    majors = queries_escalation.open_majors_in_found_order(session, campaign.id, group_scope(session, group.id))
    due = [
        (hazard, k) for hazard in majors
        if (k := supervision_due(hazard.found_at.astimezone(tz).date(), every, first, last))
    ]
    if not due:
        return Composed(skip_reason=f"no 督办 check due ({every}-day cadence)")
    lines = [
        f"【督办复查】{campaign.name} {today:%m-%d}",
        f"挂牌督办的重大隐患尚未销号（{len(due)}项），请复查五到位（措施、资金、期限、责任人、预案）：",
    ]
    shown = due if len(due) <= MAX_LINES else due[: MAX_LINES - 1]
    listed = _school_named(session, group, [h for h, _ in shown], [hazard_line(h, today) for h, _ in shown])
    for (hazard, k), line in zip(shown, listed):
        lines.append(f"{line}（第{k}次复查，督办{(today - hazard.found_at.astimezone(tz).date()).days}天）")
    if len(due) > len(shown):
        lines.append(f"……另有{len(due) - len(shown)}项")
    lines.append(f"销号后不再提醒；每{every}天复查一次。查看详情发「查看 #序号」。")
    mentions = tuple(dict.fromkeys(h.responsible_id for h, _ in due if h.responsible_id))
    return Composed((Reply("\n".join(lines), mentions=mentions),))


def _supervision_reply(session: Session, hazard: Hazard, campaign: CampaignRow, unit: str, reporter: str,
                       found: datetime, every_days: int, schools: frozenset[str]) -> Reply:
    """The 督办单 of a 重大 hazard as a file reply."""
    school_id = school_of(session, hazard.unit_id, schools)
    sheet = SupervisionSheet(
        campaign=campaign.name, number=hazard.number,
        school=unit_names(session, [school_id]).get(school_id, school_id), unit=unit,
        location=hazard.location, problem=hazard.problem, category=hazard.category,
        responsible=hazard.responsible_name, reporter=reporter, found_at=found, deadline=hazard.deadline,
        measure=hazard.measure, every_days=every_days,
    )
    return Reply(f"督办单 #{hazard.number}", file_name=supervision_file_name(sheet), file_data=supervision_workbook(sheet))


def major_alert(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime,
                settings: ComposeSettings | None = None) -> Composed:
    """重大隐患: sent to the leaders at once when a 重大 hazard is reported, with its 督办单 (挂牌督办)."""
    hazard = session.get(Hazard, json.loads(push.payload).get("hazard_id"))
    if hazard is None or hazard.status == HazardStatus.WITHDRAWN.value:
        return Composed(skip_reason="hazard withdrawn before the alert went out")
    today = now.astimezone(ZoneInfo(campaign.timezone)).date()
    unit = unit_names(session, [hazard.unit_id]).get(hazard.unit_id, hazard.unit_id)
    reporter = session.get(PersonRow, hazard.reporter_id)
    found = hazard.found_at.astimezone(ZoneInfo(campaign.timezone))
    label = f"#{hazard.number}"
    school_id = hazard.school_id
    if school_id is not None and _beyond_school(session, group, school_id):  # a county's group hears every school's 重大
        label = f"{unit_names(session, [school_id]).get(school_id, school_id)}#{hazard.number}"  # 城南小学#3
    lines = [
        f"【重大隐患】{label} {hazard.location}",
        f"问题：{hazard.problem}",
        f"单位：{unit}｜责任人：{hazard.responsible_name or '未指定'}",
        f"期限：{fmt_date(hazard.deadline)}，{days_left(hazard.deadline, today).replace('截止', '到期')}",
        f"上报：{reporter.name if reporter else hazard.reporter_id} {found:%m-%d %H:%M}｜状态：{hazard.status_label}",
        f"请校领导督办。查看详情发「查看 {label}」。",
    ]
    settings = settings or ComposeSettings()
    if not settings.supervision:
        return Composed((Reply("\n".join(lines)),))
    lines[-1] = (
        f"已挂牌督办（督办单见附件，请落实五到位：措施、资金、期限、责任人、预案），每{settings.supervision_every_days}天"
        f"复查一次直至销号。查看详情发「查看 {label}」。"
    )
    sheet = _supervision_reply(session, hazard, campaign, unit, reporter.name if reporter else hazard.reporter_id, found,
                               settings.supervision_every_days, settings.schools)
    return Composed((Reply("\n".join(lines)), sheet))


def compose(session: Session, push: DuePush, *, now: datetime, settings: ComposeSettings) -> Composed:
    """The message(s) for one due push, from the database as it is now."""
    return compose_many(session, [push], now=now, settings=settings)[0]


def compose_many(session: Session, pushes: Sequence[DuePush], *, now: datetime, settings: ComposeSettings) -> list[Composed]:
    """compose() for each push, in order; report reminders share their queries (see report_reminders)."""
    campaigns = queries_directory.campaigns_by_id(session, {p.campaign_id for p in pushes})
    groups = queries_directory.groups_by_id(session, {p.group_id for p in pushes})
    composed: list[Composed] = []
    reminders: list[tuple[int, tuple[DuePush, CampaignRow, GroupRow]]] = []
    for push in pushes:
        campaign, group = campaigns.get(push.campaign_id), groups.get(push.group_id)
        if campaign is None or group is None:
            composed.append(Composed(skip_reason=f"campaign {push.campaign_id} or group {push.group_id} no longer exists"))
        elif push.kind == "report_reminder":
            reminders.append((len(composed), (push, campaign, group)))
            composed.append(Composed())  # filled in below
        else:
            composed.append(_compose_one(session, push, campaign, group, now, settings))
    if reminders:
        for (index, _), message in zip(reminders, report_reminders(session, [item for _, item in reminders], now, settings)):
            composed[index] = message
    return composed


def _compose_one(session: Session, push: DuePush, campaign: CampaignRow, group: GroupRow, now: datetime,
                 settings: ComposeSettings) -> Composed:
    if push.kind in ("phase_nudge", "milestone_nudge"):
        return deadline_nudge(session, push, campaign, group, now)
    if push.kind == "overdue_digest":
        return overdue_digest(session, push, campaign, group, now)
    if push.kind == "leader_digest":
        return leader_digest(session, push, campaign, group, now, settings)
    if push.kind == "major_alert":
        return major_alert(session, push, campaign, group, now, settings)
    if push.kind == "escalation":
        return escalation(session, push, campaign, group, now)
    if push.kind == "supervision":
        return supervision(session, push, campaign, group, now)
    return Composed(skip_reason=f"unknown push kind {push.kind!r}")
