"""Report queries: chart data, the building summary (seed 004 附件) and the statistics table (seed 002 附件1).

Everything that counts hazards is aggregated in SQL (GROUP BY); Python only walks units, buildings and days.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, literal
from sqlalchemy import select as sa_select  # sqlmodel's select is typed for up to 4 columns
from sqlalchemy.orm import Mapped
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from models.ledger import UnitFigures, unit_figures
from models.tables import OPEN_STATUSES, CampaignRow, Hazard, HazardStatus, UnitRow

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


def _fold_tail(rows: Iterable[StatusCounts], limit: int, rest_label: Callable[[int], str]) -> list[StatusCounts]:
    """The `limit` most urgent rows; beyond that the rest (and any row already called 其他) add up into one."""
    ordered = sorted(rows, key=_urgency)
    named = [row for row in ordered if row.label != OTHER_LABEL]
    other = [row for row in ordered if row.label == OTHER_LABEL]
    if len(named) + len(other) <= limit:
        return named + other
    kept, tail = named[: limit - 1], named[limit - 1 :] + other
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
    folded = len(unit_rows) - max_units + 1 if len(unit_rows) > max_units else 0
    return ChartData(
        campaign_name=campaign.name,
        as_of=local_now,
        scope_name=scope_name,
        units=tuple(_fold_tail(unit_rows, max_units, lambda n: f"{OTHER_LABEL}{n}个单位")),
        unit_count=len(set(owner.values())),
        folded_units=folded,
        categories=tuple(_fold_tail(category_rows.values(), max_categories, lambda n: OTHER_LABEL)),
        days=tuple(days),
        found=tuple(found),
        closed=tuple(closed),
        major=major,
        totals=_sum(unit_rows, "合计"),
    )


# -- statistics table (seed 002 附件1) ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatisticsRow:
    """One unit's line of 隐患排查整改销号统计表; `depth` is its level below the top unit in scope."""

    unit_id: str
    name: str
    depth: int
    figures: UnitFigures


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


def statistics_rows(
    session: Session,
    *,
    campaign_id: str,
    unit_ids: Iterable[str] | None,
    today: date,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[StatisticsRow]:
    """Per-unit figures for every unit in scope (None: every active unit and any unit with hazards)."""
    names, parents = unit_tree(session)
    figures = unit_figures(
        session, campaign_id=campaign_id, unit_ids=unit_ids, today=today, since=since, until=until
    )
    if unit_ids is None:
        active = set(session.exec(select(UnitRow.id).where(UnitRow.active == True)))  # noqa: E712
        scope = active | set(figures)
    else:
        scope = set(unit_ids)
    return [
        StatisticsRow(unit, names.get(unit, unit), depth, figures.get(unit, UnitFigures(unit)))
        for unit, depth in tree_order(scope, parents, list(names))
    ]


# -- building summary (seed 004 附件) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuildingInfo:
    """A building (建筑单体) as configured: buildings live in the config, hazards point at their ids."""

    id: str
    name: str
    unit_id: str
    built_year: int | None = None


@dataclass(frozen=True, slots=True)
class BuildingRow:
    """One line of 排查情况汇总表 for a building."""

    building: BuildingInfo
    hazards: int = 0  # non-withdrawn hazards
    closed: int = 0  # of which 已销号
    immediate: int = 0  # of which 能立即整改
    hard_open: int = 0  # not immediate and still open (短期内难以整改)
    stopped: bool = False  # a hazard says the building is closed (停用)
    plan_date: date | None = None  # latest deadline of the open, not-immediate hazards
    responsible: tuple[str, ...] = ()  # 具体责任人 of those hazards
    problems: tuple[str, ...] = ()  # the first hazards, "部位：问题（#N）"

    @property
    def has_hazards(self) -> bool:
        return self.hazards > 0

    @property
    def all_immediate(self) -> bool:
        return self.hazards > 0 and self.immediate == self.hazards

    @property
    def hard_to_fix(self) -> bool:
        return self.hard_open > 0


@dataclass(frozen=True, slots=True)
class BuildingTotals:
    """The five counts of seed 004's 合计 line (校内建筑单体数 … 停用的单体数)."""

    buildings: int = 0
    with_hazards: int = 0
    immediate: int = 0
    hard_to_fix: int = 0
    stopped: int = 0


@dataclass(frozen=True, slots=True)
class BuildingSummary:
    rows: list[BuildingRow]
    totals: BuildingTotals
    unassigned: int = 0  # hazards in scope that name no building


def building_summary(
    session: Session,
    *,
    campaign_id: str,
    buildings: Sequence[BuildingInfo],
    unit_ids: Iterable[str] | None,
    problem_limit: int = 10,
) -> BuildingSummary:
    """Per-building figures of the hazards in scope; buildings of the scope's units are listed even without hazards."""
    wanted = None if unit_ids is None else set(unit_ids)
    live = [col(Hazard.campaign_id) == campaign_id, col(Hazard.status) != HazardStatus.WITHDRAWN.value]
    if wanted is not None:
        live.append(col(Hazard.unit_id).in_(wanted))
    is_open = col(Hazard.status).in_(OPEN_STATUSES)
    hard = and_(is_open, col(Hazard.immediate) == False)  # noqa: E712
    aggregates = session.execute(
        sa_select(
            col(Hazard.building_id),
            func.count(),
            func.sum(case((col(Hazard.status) == HazardStatus.CLOSED.value, 1), else_=0)),
            func.sum(case((col(Hazard.immediate) == True, 1), else_=0)),  # noqa: E712
            func.sum(case((hard, 1), else_=0)),
            func.sum(case((col(Hazard.closed_building) == True, 1), else_=0)),  # noqa: E712
            func.max(case((hard, Hazard.deadline), else_=None)),
        )
        .where(*live)
        .group_by(Hazard.building_id)
    ).all()
    per_building = {row[0]: row for row in aggregates if row[0] is not None}
    unassigned = sum(int(row[1]) for row in aggregates if row[0] is None)

    responsible: dict[str, list[str]] = {}
    for building_id, name in session.execute(
        select(Hazard.building_id, Hazard.responsible_name)
        .where(*live, hard, col(Hazard.building_id).isnot(None), Hazard.responsible_name != "")
        .group_by(Hazard.building_id, Hazard.responsible_name)
        .order_by(Hazard.building_id, func.min(Hazard.number))
    ):
        responsible.setdefault(building_id, []).append(name)

    rank = func.row_number().over(partition_by=Hazard.building_id, order_by=col(Hazard.number)).label("rank")
    ranked = (
        sa_select(col(Hazard.building_id), col(Hazard.number), col(Hazard.location), col(Hazard.problem), rank)
        .where(*live, col(Hazard.building_id).isnot(None))
        .subquery()
    )
    problems: dict[str, list[str]] = {}
    for building_id, number, location, problem, _ in session.execute(
        sa_select(ranked).where(ranked.c.rank <= problem_limit).order_by(ranked.c.building_id, ranked.c.number)
    ):
        text = f"{location}：{problem}" if location and location not in problem else problem
        problems.setdefault(building_id, []).append(f"{text}（#{number}）")

    known = {building.id for building in buildings}
    listed = [b for b in buildings if wanted is None or b.unit_id in wanted or b.id in per_building]
    listed += [BuildingInfo(bid, bid, "") for bid in sorted(per_building) if bid not in known]
    rows: list[BuildingRow] = []
    for building in listed:
        row = per_building.get(building.id)
        if row is None:
            rows.append(BuildingRow(building))
            continue
        _, count, closed, immediate, hard_open, stopped, plan = row
        rows.append(
            BuildingRow(
                building,
                hazards=int(count),
                closed=int(closed or 0),
                immediate=int(immediate or 0),
                hard_open=int(hard_open or 0),
                stopped=bool(stopped),
                plan_date=_as_date(plan) if plan is not None else None,
                responsible=tuple(responsible.get(building.id, ())),
                problems=tuple(problems.get(building.id, ())),
            )
        )
    totals = BuildingTotals(
        buildings=len(rows),
        with_hazards=sum(1 for r in rows if r.has_hazards),
        immediate=sum(1 for r in rows if r.all_immediate),
        hard_to_fix=sum(1 for r in rows if r.hard_to_fix),
        stopped=sum(1 for r in rows if r.stopped),
    )
    return BuildingSummary(rows, totals, unassigned)


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
    ).where(col(Hazard.campaign_id) == campaign_id, col(Hazard.status) != HazardStatus.WITHDRAWN.value)
    if unit_ids is not None:
        statement = statement.where(col(Hazard.unit_id).in_(set(unit_ids)))
    result = session.execute(statement.order_by(col(Hazard.number)).execution_options(yield_per=batch))
    for row in result:
        yield LedgerLine._make(row)
