"""Report queries: chart data, the building summary (seed 004 附件) and the statistics table (seed 002 附件1).

Everything that counts hazards is aggregated in SQL (GROUP BY); Python only walks units, buildings and days.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal
from sqlalchemy import select as sa_select  # sqlmodel's select is typed for up to 4 columns
from sqlalchemy.orm import Mapped
from sqlalchemy import false, not_, or_
from sqlalchemy.sql.elements import SQLCoreOperations
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from models.ledger import UnitFigures, total_figures, unit_figures
from models.lookback import missed_by_unit
from models.tables import OPEN_STATUSES, CampaignRow, CheckRecord, Hazard, HazardStatus, Submission, UnitRow

OTHER_LABEL = "其他"


# -- chart data ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """Outstanding hazards of one unit or category, split by where they stand."""

    label: str
    rectifying: int = 0  # 整改中, deadline not yet passed
    awaiting: int = 0  # 已整改，待验收
    overdue: int = 0  # 整改中 and past the deadline

    @property
    def total(self) -> int:
        return self.rectifying + self.awaiting + self.overdue

    def __add__(self, other: StatusCounts) -> StatusCounts:
        return StatusCounts(
            self.label, self.rectifying + other.rectifying, self.awaiting + other.awaiting, self.overdue + other.overdue
        )


@dataclass(frozen=True, slots=True)
class ChartData:
    """Everything the outstanding-items chart shows, as plain values (no database objects)."""

    campaign_name: str
    as_of: datetime  # zone-aware local time of the snapshot
    scope_name: str = ""  # whose hazards: a school, a group …
    units: Sequence[StatusCounts] = ()  # one per unit with outstanding items, most urgent first
    unit_count: int = 0  # units in scope, including those with nothing outstanding
    categories: Sequence[StatusCounts] = ()  # most urgent first
    days: Sequence[date] = ()  # the campaign's days so far
    found: Sequence[int] = ()  # hazards found on each day
    closed: Sequence[int] = ()  # hazards closed (销号) on each day
    major: int = 0  # outstanding 重大 hazards
    totals: StatusCounts = field(default_factory=lambda: StatusCounts("合计"))
    folded_units: int = 0  # units added up in the last row of `units` (其他N个单位); 0: no such row
    reported: int = 0  # hazards reported in scope (withdrawn ones left out): tells "none yet" from "all closed"


def _urgency(row: StatusCounts) -> tuple[int, int, str]:
    return (-row.overdue, -row.total, row.label)


def _status_sums(today: date) -> tuple[ColumnElement[int], ...]:
    rectifying = col(Hazard.status) == HazardStatus.RECTIFYING.value
    return (
        func.sum(case((and_(rectifying, col(Hazard.deadline) >= today), 1), else_=0)),
        func.sum(case((col(Hazard.status) == HazardStatus.RECTIFIED.value, 1), else_=0)),
        func.sum(case((and_(rectifying, col(Hazard.deadline) < today), 1), else_=0)),
        func.sum(case((col(Hazard.level) == "重大", 1), else_=0)),
    )


def _open_hazards(campaign_id: str, unit_ids: set[str] | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        col(Hazard.campaign_id) == campaign_id,
        col(Hazard.status).in_(OPEN_STATUSES),
    ]
    if unit_ids is not None:
        conditions.append(col(Hazard.unit_id).in_(unit_ids))
    return conditions


def unit_tree(session: Session) -> tuple[dict[str, str], dict[str, str | None]]:
    """Every unit's name and parent, in the database's (config) order."""
    names: dict[str, str] = {}
    parents: dict[str, str | None] = {}
    rows = session.execute(select(UnitRow.id, UnitRow.name, UnitRow.parent_id).order_by(col(UnitRow.seq), col(UnitRow.id)))
    for unit_id, name, parent_id in rows:
        names[unit_id] = name
        parents[unit_id] = parent_id
    return names, parents


def bar_units(unit_ids: Iterable[str], parents: dict[str, str | None]) -> tuple[dict[str, str], str | None]:
    """Map each unit in scope to the unit whose bar it counts towards, and name the unit shown as 本级.

    One top unit with sub-units (a school and its departments): one bar per sub-unit subtree plus one for
    the top unit's own hazards (本级). Several top units (a county's schools): one bar per top unit with
    its subtree rolled up, so two schools' 教务处 never share an ambiguous bar.
    """
    scope = set(unit_ids)
    tops = {unit for unit in scope if parents.get(unit) not in scope}

    def top_of(unit: str, heads: set[str]) -> str:
        seen: set[str] = set()
        cursor: str | None = unit
        while cursor is not None and cursor not in heads and cursor not in seen:
            seen.add(cursor)
            cursor = parents.get(cursor)
        return cursor if cursor in heads else unit

    if len(tops) == 1:
        (root,) = tops
        children = {unit for unit in scope if parents.get(unit) == root}
        if children:
            return {unit: root if unit == root else top_of(unit, children) for unit in scope}, root
    return {unit: top_of(unit, tops) for unit in scope}, None


def _local_day(session: Session, column: Mapped[datetime | None], tz: ZoneInfo, at: datetime) -> ColumnElement[object]:
    """The local calendar day of a UTC timestamp column, in SQL."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return func.date(func.timezone(tz.key, column))
    # SQLite has no time zones: shift by the zone's offset now (exact for China, which has no DST).
    offset = at.astimezone(tz).utcoffset() or timedelta()
    return func.date(column, f"{int(offset.total_seconds() // 60):+d} minutes")


def _as_date(value: object) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def daily_found_closed(
    session: Session,
    *,
    campaign_id: str,
    unit_ids: set[str] | None,
    first: date,
    last: date,
    tz: ZoneInfo,
    at: datetime,
) -> tuple[list[date], list[int], list[int]]:
    """Hazards found and closed on each local day from `first` to `last` (days outside fold into the ends)."""
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    index = {day: i for i, day in enumerate(days)}
    series: dict[str, list[int]] = {"found": [0] * len(days), "closed": [0] * len(days)}
    base = [col(Hazard.campaign_id) == campaign_id, col(Hazard.status) != HazardStatus.WITHDRAWN.value]
    if unit_ids is not None:
        base.append(col(Hazard.unit_id).in_(unit_ids))
    for name, column, extra in (
        ("found", col(Hazard.found_at), None),
        ("closed", col(Hazard.closed_at), col(Hazard.status) == HazardStatus.CLOSED.value),
    ):
        day = _local_day(session, column, tz, at).label("day")
        conditions = [*base, column.isnot(None)]
        if extra is not None:
            conditions.append(extra)
        statement = select(day, func.count()).where(*conditions).group_by(day)
        for raw_day, count in session.execute(statement):
            when = _as_date(raw_day)
            slot = index.get(when, 0 if when < first else len(days) - 1)
            series[name][slot] += int(count)
    return days, series["found"], series["closed"]


MAX_OVERDUE_BARS = 30  # units with overdue items keep their own bar beyond max_units, up to this many bars


def _fold_tail(
    rows: Iterable[StatusCounts], limit: int, rest_label: Callable[[int], str], *, keep_overdue: bool = False
) -> list[StatusCounts]:
    """The `limit` most urgent rows; beyond that the rest (and any row already called 其他) add up into one.

    With `keep_overdue`, every row with overdue items keeps its own bar (up to MAX_OVERDUE_BARS bars in all):
    folding must not hide which units are late.
    """
    ordered = sorted(rows, key=_urgency)
    named = [row for row in ordered if row.label != OTHER_LABEL]
    other = [row for row in ordered if row.label == OTHER_LABEL]
    if len(named) + len(other) <= limit:
        return named + other
    keep = limit - 1
    if keep_overdue:
        late = sum(1 for row in named if row.overdue)
        keep = max(keep, min(late, MAX_OVERDUE_BARS - 1))
    kept, tail = named[:keep], named[keep:] + other
    rest = StatusCounts(rest_label(len(tail)))
    for row in tail:
        rest = rest + row
    return [*kept, rest]


def _sum(rows: Iterable[StatusCounts], label: str) -> StatusCounts:
    total = StatusCounts(label)
    for row in rows:
        total = total + row
    return total


def chart_data(
    session: Session,
    *,
    campaign: CampaignRow,
    unit_ids: Iterable[str] | None,
    now: datetime,
    scope_name: str = "",
    max_units: int = 12,
    max_categories: int = 8,
) -> ChartData:
    """The outstanding-items snapshot of the given units (None: every unit) at `now`."""
    tz = ZoneInfo(campaign.timezone)
    local_now = now.astimezone(tz)
    today = local_now.date()
    names, parents = unit_tree(session)
    wanted = None if unit_ids is None else set(unit_ids)
    conditions = _open_hazards(campaign.id, wanted)

    per_unit = session.execute(
        select(Hazard.unit_id, *_status_sums(today)).where(*conditions).group_by(Hazard.unit_id)
    ).all()
    if wanted is None:
        wanted_or_active = set(session.exec(select(UnitRow.id).where(UnitRow.active == True)))  # noqa: E712
    else:
        wanted_or_active = wanted
    scope = wanted_or_active | {row[0] for row in per_unit}
    owner, own_level = bar_units(scope, parents)
    own_open = {row[0] for row in per_unit}
    bars: dict[str, StatusCounts] = {}
    major = 0
    for unit_id, rectifying, awaiting, overdue, unit_major in per_unit:
        key = owner.get(unit_id, unit_id)
        label = names.get(key, key) + ("（本级）" if key == own_level else "")
        counts = StatusCounts(label, int(rectifying or 0), int(awaiting or 0), int(overdue or 0))
        bars[key] = bars[key] + counts if key in bars else counts
        major += int(unit_major or 0)
    unit_rows = [row for row in bars.values() if row.total]

    category = func.coalesce(Hazard.category, literal(OTHER_LABEL)).label("category")
    per_category = session.execute(
        select(category, *_status_sums(today)[:3]).where(*conditions).group_by(category)
    ).all()
    category_rows: dict[str, StatusCounts] = {}
    for label, rectifying, awaiting, overdue in per_category:
        label = label or OTHER_LABEL
        counts = StatusCounts(label, int(rectifying or 0), int(awaiting or 0), int(overdue or 0))
        category_rows[label] = category_rows[label] + counts if label in category_rows else counts

    last = min(max(today, campaign.start), campaign.end)
    days, found, closed = daily_found_closed(
        session, campaign_id=campaign.id, unit_ids=wanted, first=campaign.start, last=last, tz=tz, at=local_now
    )
    units = _fold_tail(unit_rows, max_units, lambda n: f"{OTHER_LABEL}{n}个单位", keep_overdue=True)
    folded = len(unit_rows) - len(units) + 1 if len(units) < len(unit_rows) else 0
    # The 本级 of a county (its bureau) is a unit of the count only when it has open items of its own.
    counted = {key for key in owner.values() if key != own_level or own_level in own_open}
    return ChartData(
        campaign_name=campaign.name,
        as_of=local_now,
        scope_name=scope_name,
        units=tuple(units),
        unit_count=len(counted),
        folded_units=folded,
        reported=sum(found),
        categories=tuple(_fold_tail(category_rows.values(), max_categories, lambda n: OTHER_LABEL)),
        days=tuple(days),
        found=tuple(found),
        closed=tuple(closed),
        major=major,
        totals=_sum(unit_rows, "合计"),
    )


# -- the units a form has a row (or a sheet) for ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportUnit:
    """A unit the official forms report on: a school (or kindergarten) with its departments rolled up.

    Seed 002 附件1: "统计表只填写学校和幼儿园项". A unit above the schools (a county bureau) reports only the
    hazards filed on itself (`own_level`, shown as 本级), and only when it has some.
    """

    unit_id: str
    name: str
    units: frozenset[str]  # the unit ids whose hazards count here (the school and everything under it)
    own_level: bool = False  # a unit above the schools: only its own hazards
    active: bool = True  # False: no longer in the config; listed only while it has hazards

    @property
    def label(self) -> str:
        return f"{self.name}（本级）" if self.own_level else self.name


def report_units(
    session: Session, *, unit_ids: Iterable[str] | None, schools: Iterable[str] = ()
) -> list[ReportUnit]:
    """The report units of a scope (None: every unit, also those no longer configured), in config order.

    `schools` are the units owning buildings. A unit belongs to the nearest school at or above it; a unit
    above schools reports its own hazards; any other unit rolls up into the highest unit above it in scope
    that is not above a school (as `models.ledger.school_of` does). Without any school in scope, the tops of
    the scope are the schools, or their children when the one top is a county over schools with departments.
    """
    names, parents = unit_tree(session)
    active = set(session.exec(select(UnitRow.id).where(col(UnitRow.active).is_(True))))
    scope = set(names) if unit_ids is None else set(unit_ids)
    heads = set(schools) & scope
    if not heads:
        tops = {unit for unit in scope if parents.get(unit) not in scope}
        heads = tops
        if len(tops) == 1:
            (top,) = tops
            children = {unit for unit in scope if parents.get(unit) == top}
            if any(parents.get(unit) in children for unit in scope):
                heads = children
    above: set[str] = set()
    for school in heads:
        up = parents.get(school)
        while up is not None and up not in above:
            above.add(up)
            up = parents.get(up)
    owner: dict[str, str] = {}
    for unit in scope:
        chain: list[str] = []
        cursor: str | None = unit
        while cursor is not None and cursor not in chain:
            chain.append(cursor)
            cursor = parents.get(cursor)
        head = next((u for u in chain if u in heads), unit)
        if head == unit and unit not in heads and unit not in above:
            for u in chain[1:]:
                if u in above or u not in scope:
                    break
                head = u
        owner[unit] = head
    members: dict[str, set[str]] = {}
    for unit, head in owner.items():
        members.setdefault(head, set()).add(unit)
    order = {unit: i for i, unit in enumerate(names)}
    return [
        ReportUnit(head, names.get(head, head), frozenset(units), own_level=head in above, active=head in active)
        for head, units in sorted(members.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    ]


# -- statistics table (seed 002 附件1) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatisticsRow:
    """One line of 隐患排查整改销号统计表: a school rolled up (depth 0), or one of its departments (depth 1,
    a 其中 line shown when the form covers a single school; not added into 合计)."""

    unit_id: str
    name: str
    depth: int
    figures: UnitFigures
    submitted: UnitFigures | None = None  # what the unit sent with 报送 for the period, if it did
    submitted_at: datetime | None = None
    missed: int = 0  # 回头看: live findings from inspections above that the school's self-check missed


def tree_order(unit_ids: Iterable[str], parents: dict[str, str | None], order: Sequence[str]) -> list[tuple[str, int]]:
    """Units depth-first (parents before their children, siblings in `order`), each with its depth in the set."""
    scope = set(unit_ids)
    position = {unit: i for i, unit in enumerate(order)}
    children: dict[str | None, list[str]] = {}
    for unit in sorted(scope, key=lambda u: (position.get(u, len(position)), u)):
        parent = parents.get(unit)
        children.setdefault(parent if parent in scope else None, []).append(unit)
    result: list[tuple[str, int]] = []
    stack = [(unit, 0) for unit in reversed(children.get(None, []))]
    while stack:
        unit, depth = stack.pop()
        result.append((unit, depth))
        stack.extend((child, depth + 1) for child in reversed(children.get(unit, [])))
    return result


def _roll_up(unit_id: str, figures: Iterable[UnitFigures]) -> UnitFigures:
    total = total_figures(figures)
    return UnitFigures(unit_id, total.found, total.rectified, total.closed, total.outstanding, total.overdue,
                       total.major)


@dataclass(frozen=True, slots=True)
class PeriodBounds:
    """A reporting period's local days [start, due] as zone-aware [since, until)."""

    since: datetime
    until: datetime
    due: date


def period_figures(
    session: Session, *, campaign_id: str, unit_ids: Iterable[str] | None, period: PeriodBounds, today: date
) -> dict[str, UnitFigures]:
    """Per-unit figures of one reporting period: found, rectified and closed within it, and what was still
    open, overdue and major at its end (or now, for the running period), read from the hazards' timestamps."""
    end = min(period.until, datetime.combine(today + timedelta(days=1), datetime.min.time(), period.since.tzinfo))
    day = min(period.due, today)  # overdue as a 报送 on the report day counts it: deadline before that day
    live = col(Hazard.status) != HazardStatus.WITHDRAWN.value

    def within(column: SQLCoreOperations[Any]) -> ColumnElement[bool]:
        return and_(live, column.isnot(None), column >= period.since, column < period.until)

    found, rectified, closed = col(Hazard.found_at), col(Hazard.rectified_at), col(Hazard.closed_at)
    open_at_end = and_(live, found < end, or_(closed.is_(None), closed >= end))
    unrectified = or_(rectified.is_(None), rectified >= end)
    statement = (
        sa_select(
            col(Hazard.unit_id),
            func.sum(case((within(found), 1), else_=0)),
            func.sum(case((within(rectified), 1), else_=0)),
            func.sum(case((within(closed), 1), else_=0)),
            func.sum(case((open_at_end, 1), else_=0)),
            func.sum(case((and_(open_at_end, unrectified, col(Hazard.deadline) < day), 1), else_=0)),
            func.sum(case((and_(open_at_end, col(Hazard.level) == "重大"), 1), else_=0)),
        )
        .where(col(Hazard.campaign_id) == campaign_id)
        .group_by(col(Hazard.unit_id))
    )
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(set(unit_ids)))
    return {
        row[0]: UnitFigures(row[0], *(int(value or 0) for value in row[1:])) for row in session.execute(statement)
    }


FIGURE_KEYS = ("found", "rectified", "closed", "outstanding", "overdue", "major")


def submitted_figures(
    session: Session, *, campaign_id: str, due: date
) -> dict[str, tuple[UnitFigures, datetime]]:
    """The figures each unit sent with 报送 for the period due on `due`, and when."""
    result: dict[str, tuple[UnitFigures, datetime]] = {}
    for unit_id, raw, at in session.execute(
        select(Submission.unit_id, Submission.figures, Submission.at).where(
            Submission.campaign_id == campaign_id, Submission.period_due == due
        )
    ):
        try:
            data = json.loads(raw or "{}")
        except ValueError:
            data = {}
        values = [int(data.get(key, 0) or 0) if isinstance(data, dict) else 0 for key in FIGURE_KEYS]
        result[unit_id] = (UnitFigures(unit_id, *values), at)
    return result


def statistics_rows(
    session: Session,
    *,
    campaign_id: str,
    unit_ids: Iterable[str] | None,
    today: date,
    since: datetime | None = None,
    until: datetime | None = None,
    schools: Iterable[str] = (),
    period: PeriodBounds | None = None,
    with_missed: bool = False,
) -> list[StatisticsRow]:
    """One row per school with its departments rolled up (see `report_units`); a unit above the schools only
    when it has hazards of its own. A form of a single school lists its departments under it (depth 1).

    With a `period`, the figures are that reporting period's, and each school row carries what the school
    (or, when it sent none itself, its departments together) submitted with 报送 for it. With `with_missed`
    (回头看), each row counts the live findings its self-check missed (`StatisticsRow.missed`, whole campaign).
    """
    heads = report_units(session, unit_ids=unit_ids, schools=schools)
    scope = None if unit_ids is None else set().union(*(head.units for head in heads))
    if period is not None:
        figures = period_figures(session, campaign_id=campaign_id, unit_ids=scope, period=period, today=today)
        sent = submitted_figures(session, campaign_id=campaign_id, due=period.due)
    else:
        figures = unit_figures(
            session, campaign_id=campaign_id, unit_ids=scope, today=today, since=since, until=until
        )
        sent = {}
    names, parents = unit_tree(session)
    missed = missed_by_unit(session, campaign_id, scope) if with_missed else {}
    rows: list[StatisticsRow] = []
    rolled_up = {
        head.unit_id: _roll_up(head.unit_id, (figures[u] for u in ({head.unit_id} if head.own_level else head.units)
                                              if u in figures))
        for head in heads
    }
    shown = [
        head for head in heads
        if (head.active and not head.own_level) or _has_hazards(rolled_up[head.unit_id])
    ]
    for head in shown:
        units = {head.unit_id} if head.own_level else head.units
        rolled = rolled_up[head.unit_id]
        submitted, at = _submitted_for(head, sent)
        head_missed = sum(missed.get(unit, 0) for unit in units)
        rows.append(StatisticsRow(head.unit_id, head.label, 0, rolled, submitted, at, head_missed))
        if len(shown) == 1 and not head.own_level:
            active = set(session.exec(select(UnitRow.id).where(col(UnitRow.active).is_(True))))
            for unit, depth in tree_order(units, parents, list(names)):
                if depth == 0 or (unit not in active and not _has_hazards(figures.get(unit))):
                    continue
                rows.append(StatisticsRow(unit, names.get(unit, unit), depth, figures.get(unit, UnitFigures(unit)),
                                          missed=missed.get(unit, 0)))
    return rows



def _has_hazards(figures: UnitFigures | None) -> bool:
    return figures is not None and any(getattr(figures, key) for key in FIGURE_KEYS)


def _submitted_for(
    head: ReportUnit, sent: dict[str, tuple[UnitFigures, datetime]]
) -> tuple[UnitFigures | None, datetime | None]:
    """The school's own 报送, else its departments' 报送 added up (the latest time); None when nobody sent."""
    if head.unit_id in sent:
        return sent[head.unit_id]
    parts = [sent[unit] for unit in sorted(head.units) if unit in sent] if not head.own_level else []
    if not parts:
        return None, None
    return _roll_up(head.unit_id, (f for f, _ in parts)), max(at for _, at in parts)


# -- building summary (seed 004 附件) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildingInfo:
    """A building (建筑单体) as configured: buildings live in the config, hazards point at their ids."""

    id: str
    name: str
    unit_id: str
    built_year: int | None = None


# A hazard is 能立即整改 when it was reported as such (立即整改：是), when its deadline is at most this many days
# after the day it was found, or when it was fixed (整改 reported) within that many days: 立查立改.
IMMEDIATE_DAYS = 3


@dataclass(frozen=True, slots=True)
class BuildingRow:
    """One line of 排查情况汇总表 for a building."""

    building: BuildingInfo
    hazards: int = 0  # non-withdrawn hazards
    closed: int = 0  # of which 已销号
    immediate: int = 0  # of which 能立即整改 (see IMMEDIATE_DAYS)
    hard_open: int = 0  # not immediate and still open (短期内难以整改)
    stopped: bool = False  # a hazard says the building is closed (停用)
    plan_date: date | None = None  # latest deadline of the open, not-immediate hazards
    responsible: tuple[str, ...] = ()  # 具体责任人 of those hazards
    problems: tuple[str, ...] = ()  # the first hazards, "部位：问题（#N）"
    checks: int = 0  # 检查 records (checked without hazard) of the building

    @property
    def has_hazards(self) -> bool:
        return self.hazards > 0

    @property
    def checked(self) -> bool:
        """Somebody looked at it: a 检查 record, or a hazard found there."""
        return self.checks > 0 or self.hazards > 0

    @property
    def all_immediate(self) -> bool:
        return self.hazards > 0 and self.immediate == self.hazards

    @property
    def hard_to_fix(self) -> bool:
        return self.hard_open > 0


@dataclass(frozen=True, slots=True)
class BuildingTotals:
    """The five counts of seed 004's 合计 line (校内建筑单体数 … 停用的单体数), and how many were never checked."""

    buildings: int = 0
    with_hazards: int = 0
    immediate: int = 0
    hard_to_fix: int = 0
    stopped: int = 0
    unchecked: int = 0


@dataclass(frozen=True, slots=True)
class BuildingSummary:
    rows: list[BuildingRow]
    totals: BuildingTotals
    unassigned: int = 0  # hazards in scope that name no building of their own school


class _BuildingAggregate(NamedTuple):
    hazards: int
    closed: int
    immediate: int
    hard_open: int
    stopped: bool
    plan: date | None


def _local_day_plus(session: Session, column: SQLCoreOperations[Any], tz: ZoneInfo, days: int) -> ColumnElement[date]:
    """The local calendar day of a UTC timestamp column plus `days`, comparable with a DATE column, in SQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.date(func.timezone(tz.key, column)) + days
    offset = datetime(2000, 1, 1, tzinfo=tz).utcoffset() or timedelta()  # China has no DST
    return func.date(column, f"{int(offset.total_seconds() // 60):+d} minutes", f"+{days} days")


def _immediate_rule(session: Session, tz: ZoneInfo, days: int) -> ColumnElement[bool]:
    """能立即整改: said so, or a deadline within `days` days of the finding, or fixed within them."""
    found_plus = _local_day_plus(session, col(Hazard.found_at), tz, days)
    rectified = col(Hazard.rectified_at)
    return or_(
        col(Hazard.immediate).is_(True),
        col(Hazard.deadline) <= found_plus,
        and_(rectified.isnot(None), _local_day_plus(session, rectified, tz, 0) <= found_plus),
    )


def _own_building(buildings: Sequence[BuildingInfo], school_of_unit: dict[str, str]) -> ColumnElement[bool]:
    """The hazard's building belongs to the hazard's own school (never another school's 食堂 of the same name)."""
    units: dict[str, set[str]] = {}
    for unit, school in school_of_unit.items():
        units.setdefault(school, set()).add(unit)
    per_school: dict[str, set[str]] = {}
    for building in buildings:
        per_school.setdefault(building.unit_id, set()).add(building.id)
    clauses = [
        and_(col(Hazard.building_id).in_(ids), col(Hazard.unit_id).in_(units[school]))
        for school, ids in per_school.items() if school in units
    ]
    return or_(false(), *clauses)


def _building_aggregates(
    session: Session, live: list[ColumnElement[bool]], immediate: ColumnElement[bool]
) -> dict[str, _BuildingAggregate]:
    """Per building: hazards, closed, immediate, hard and open, 停用, and the plan date, in one GROUP BY."""
    hard = and_(col(Hazard.status).in_(OPEN_STATUSES), not_(immediate))
    building = col(Hazard.building_id)
    rows = session.execute(
        sa_select(
            building,
            func.count(),
            func.sum(case((col(Hazard.status) == HazardStatus.CLOSED.value, 1), else_=0)),
            func.sum(case((immediate, 1), else_=0)),
            func.sum(case((hard, 1), else_=0)),
            func.sum(case((col(Hazard.closed_building).is_(True), 1), else_=0)),
            func.max(case((hard, col(Hazard.deadline)), else_=None)),
        )
        .where(*live)
        .group_by(building)
    ).all()
    return {
        building_id: _BuildingAggregate(
            int(count), int(closed or 0), int(quick or 0), int(hard_open or 0), bool(stopped),
            _as_date(plan) if plan is not None else None,
        )
        for building_id, count, closed, quick, hard_open, stopped, plan in rows
        if building_id is not None
    }


def _building_responsible(
    session: Session, live: list[ColumnElement[bool]], immediate: ColumnElement[bool]
) -> dict[str, list[str]]:
    """具体责任人 of each building's open hazards that cannot be fixed at once, in 序号 order."""
    hard = and_(col(Hazard.status).in_(OPEN_STATUSES), not_(immediate))
    building, name = col(Hazard.building_id), col(Hazard.responsible_name)
    responsible: dict[str, list[str]] = {}
    for building_id, person in session.execute(
        select(building, name)
        .where(*live, hard, name != "")
        .group_by(building, name)
        .order_by(building, func.min(col(Hazard.number)))
    ):
        if building_id is not None:
            responsible.setdefault(building_id, []).append(person)
    return responsible


def _building_problems(session: Session, live: list[ColumnElement[bool]], limit: int) -> dict[str, list[str]]:
    """The first `limit` hazards of each building as "部位：问题（#N）"."""
    building, number = col(Hazard.building_id), col(Hazard.number)
    rank = func.row_number().over(partition_by=building, order_by=number).label("rank")
    ranked = sa_select(building, number, col(Hazard.location), col(Hazard.problem), rank).where(*live).subquery()
    problems: dict[str, list[str]] = {}
    for building_id, seq, location, problem, _ in session.execute(
        sa_select(ranked).where(ranked.c.rank <= limit).order_by(ranked.c.building_id, ranked.c.number)
    ):
        text = f"{location}：{problem}" if location and location not in problem else problem
        problems.setdefault(building_id, []).append(f"{text}（#{seq}）")
    return problems


def _building_checks(session: Session, campaign_id: str, building_ids: Iterable[str]) -> dict[str, int]:
    """How many 检查 (checked, no hazard) records each building has."""
    ids = set(building_ids)
    if not ids:
        return {}
    building = col(CheckRecord.building_id)
    statement = (
        select(building, func.count())
        .where(col(CheckRecord.campaign_id) == campaign_id, building.in_(ids))
        .group_by(building)
    )
    return {building_id: int(count) for building_id, count in session.execute(statement) if building_id}


def _building_totals(rows: Sequence[BuildingRow]) -> BuildingTotals:
    return BuildingTotals(
        buildings=len(rows),
        with_hazards=sum(1 for r in rows if r.has_hazards),
        immediate=sum(1 for r in rows if r.all_immediate),
        hard_to_fix=sum(1 for r in rows if r.hard_to_fix),
        stopped=sum(1 for r in rows if r.stopped),
        unchecked=sum(1 for r in rows if not r.checked),
    )


def building_summary(
    session: Session,
    *,
    campaign_id: str,
    buildings: Sequence[BuildingInfo],
    unit_ids: Iterable[str] | None,
    problem_limit: int = 10,
    tz: ZoneInfo | str = "Asia/Shanghai",
    immediate_days: int = IMMEDIATE_DAYS,
    school: ReportUnit | None = None,
) -> BuildingSummary:
    """Per-building figures of the hazards in scope; every building of the scope's schools is listed.

    A hazard counts for a building only when the building belongs to the hazard's own school; any other
    hazard in scope is `unassigned` (the form notes how many, and the ledger lists them). A caller that
    already knows the one `school` of the scope (see `report_units`) saves looking the schools up again.
    """
    zone = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
    wanted = None if unit_ids is None else set(unit_ids)
    schools = {b.unit_id for b in buildings}
    listed = [b for b in buildings if wanted is None or b.unit_id in wanted]
    heads = [school] if school is not None else report_units(session, unit_ids=wanted, schools=schools)
    school_of_unit = {unit: head.unit_id for head in heads for unit in head.units if head.unit_id in schools}
    live = [col(Hazard.campaign_id) == campaign_id, col(Hazard.status) != HazardStatus.WITHDRAWN.value]
    if wanted is not None:
        live.append(col(Hazard.unit_id).in_(wanted))
    own = [*live, _own_building(listed, school_of_unit)]
    total = session.execute(select(func.count()).select_from(Hazard).where(*live)).scalar_one()
    immediate = _immediate_rule(session, zone, immediate_days)
    aggregates = _building_aggregates(session, own, immediate)
    responsible = _building_responsible(session, own, immediate)
    problems = _building_problems(session, own, problem_limit)
    checks = _building_checks(session, campaign_id, (b.id for b in listed))
    rows: list[BuildingRow] = []
    for building in listed:
        found = aggregates.get(building.id)
        checked = checks.get(building.id, 0)
        if found is None:
            rows.append(BuildingRow(building, checks=checked))
            continue
        rows.append(BuildingRow(
            building, hazards=found.hazards, closed=found.closed, immediate=found.immediate,
            hard_open=found.hard_open, stopped=found.stopped, plan_date=found.plan,
            responsible=tuple(responsible.get(building.id, ())), problems=tuple(problems.get(building.id, ())),
            checks=checked,
        ))
    assigned = sum(found.hazards for found in aggregates.values())
    return BuildingSummary(rows, _building_totals(rows), int(total or 0) - assigned)


# -- the ledger itself (seed 003 附件2) ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LedgerCounts:
    total: int = 0
    closed: int = 0

    @property
    def open(self) -> int:
        return self.total - self.closed


def ledger_counts(session: Session, *, campaign_id: str, unit_ids: Iterable[str] | None) -> LedgerCounts:
    """How many rows the ledger has (withdrawn reports left out) and how many are closed."""
    statement = select(
        func.count(), func.sum(case((col(Hazard.status) == HazardStatus.CLOSED.value, 1), else_=0))
    ).where(Hazard.campaign_id == campaign_id, Hazard.status != HazardStatus.WITHDRAWN.value)
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(set(unit_ids)))
    total, closed = session.execute(statement).one()
    return LedgerCounts(int(total or 0), int(closed or 0))


# 整改完成情况 when no completion note was written (the words of Hazard.status_label_for_ledger).
LEDGER_STATUS_TEXT = {"rectifying": "整改中", "rectified": "已整改待验收", "closed": "已整改", "withdrawn": "已撤销"}


class LedgerLine(NamedTuple):
    """The columns of one ledger row (seed 003 附件2) plus what 备注 is built from."""

    number: int
    location: str
    check_item: str
    problem: str
    measure: str
    completion: str
    responsible_name: str
    found_at: datetime
    closed_at: datetime | None
    status: str
    level: str
    deadline: date
    remark: str
    category: str
    school_id: str | None  # the hazard's school (its number is per school)
    origin: str  # 回头看: where the finding comes from (自查, 县普查, 市抽查, 督查 …)
    origin_date: date | None  # … and when it was first found there
    missed_by_school: bool  # found from above: the school's own self-check missed it

    @property
    def completion_text(self) -> str:
        return self.completion or LEDGER_STATUS_TEXT[self.status]


def ledger_lines(
    session: Session, *, campaign_id: str, unit_ids: Iterable[str] | None, batch: int = 2000
) -> Iterator[LedgerLine]:
    """The ledger rows in 序号 order, streamed in batches (withdrawn reports are left out)."""
    statement = sa_select(
        col(Hazard.number), col(Hazard.location), col(Hazard.check_item), col(Hazard.problem), col(Hazard.measure),
        col(Hazard.completion), col(Hazard.responsible_name), col(Hazard.found_at), col(Hazard.closed_at),
        col(Hazard.status), col(Hazard.level), col(Hazard.deadline), col(Hazard.remark), col(Hazard.category),
        col(Hazard.school_id), col(Hazard.origin), col(Hazard.origin_date), col(Hazard.missed_by_school),
    ).where(col(Hazard.campaign_id) == campaign_id, col(Hazard.status) != HazardStatus.WITHDRAWN.value)
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(set(unit_ids)))
    result = session.execute(statement.order_by(col(Hazard.number)).execution_options(yield_per=batch))
    for row in result:
        yield LedgerLine._make(row)
