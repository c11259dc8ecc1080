"""统计: figures of the group's units as text plus a chart snapshot (台账, the XLSX forms, is in exports.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from sqlmodel import Session

from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.directory import unit_names
from handlers.messages import Reply
from models.ledger import UnitFigures, total_figures, unit_figures
from models.tables import CampaignRow

log = logging.getLogger(__name__)

HELP_STATS = "查看本群各单位的隐患统计（文字加图表）：统计"


def report_units(context: Context) -> set[str] | None:
    """The units a chat's statistics cover: the chat's units, within the person's scope."""
    return permissions.visible_units(context)


def reporting_unit_name(context: Context) -> str:
    """填报单位 and the chart's scope: the group's units, else the speaker's own scope or school."""
    session = context.session
    roots = sorted(context.group_unit_ids)
    if not roots:
        root = permissions.scope_root(session, context.person)
        roots = [root] if root else (permissions.chat_roots(context) or [])
    names = unit_names(session, roots)
    shown = [names.get(root, root) for root in roots]
    return "、".join(shown[:3]) + (f"等{len(shown)}个单位" if len(shown) > 3 else "")


def outstanding_chart_png(
    session: Session, *, campaign: CampaignRow, unit_ids: Iterable[str] | None, now: datetime, scope_name: str = ""
) -> bytes:
    """The 统计 chart of the given units (None: all) as PNG; the scheduler's digests call this too."""
    from handlers.charts import render_outstanding_chart
    from models.reports import chart_data

    data = chart_data(session, campaign=campaign, unit_ids=unit_ids, now=now, scope_name=scope_name)
    return render_outstanding_chart(data)


def _per_school(
    context: Context, units: set[str] | None, figures: dict[str, UnitFigures]
) -> tuple[dict[str, str], dict[str, UnitFigures]]:
    """Several schools in scope (a county): one line per school with its departments rolled up, so that two
    schools' 教务处 never share an ambiguous line; a single school keeps one line per department."""
    from models.reports import report_units as school_rows

    schools = {building.unit_id for building in context.policy.buildings}
    heads = school_rows(context.session, unit_ids=units, schools=schools)
    if sum(1 for head in heads if not head.own_level) < 2:
        return {}, figures
    rolled: dict[str, UnitFigures] = {}
    for head in heads:
        members = {head.unit_id} if head.own_level else head.units
        total = total_figures(figures[u] for u in members if u in figures)
        rolled[head.unit_id] = UnitFigures(head.unit_id, total.found, total.rectified, total.closed,
                                           total.outstanding, total.overdue, total.major)
    return {head.unit_id: head.label for head in heads}, rolled


def handle_stats(command: Command, context: Context) -> list[Reply]:
    """Per-unit table of found / closed / outstanding / overdue / major, with the chart attached."""
    session = context.session
    units = report_units(context)
    figures = unit_figures(session, campaign_id=context.campaign.id, unit_ids=units, today=context.today)
    total = total_figures(figures.values())
    names, figures = _per_school(context, units, figures)
    rows = sorted(
        (f for f in figures.values() if f.found or f.outstanding),
        key=lambda f: (-f.overdue, -f.outstanding, f.unit_id),
    )
    names = {**unit_names(session, [f.unit_id for f in rows if f.unit_id not in names]), **names}
    lines = [
        f"{context.campaign.name}",
        f"截至{context.now:%Y-%m-%d %H:%M}：发现{total.found}｜销号{total.closed}｜未销号{total.outstanding}"
        f"｜逾期{total.overdue}｜重大{total.major}",
    ]
    if rows:
        lines.append("单位：发现/销号/未销号/逾期")
        for f in rows[:20]:
            lines.append(f"· {names.get(f.unit_id, f.unit_id)}：{f.found}/{f.closed}/{f.outstanding}/{f.overdue}")
        if len(rows) > 20:
            lines.append(f"……另有{len(rows) - 20}个单位")
    else:
        lines.append("还没有登记隐患。")
    try:
        image = outstanding_chart_png(
            session, campaign=context.campaign, unit_ids=units, now=context.now,
            scope_name=reporting_unit_name(context),
        )
    except Exception:  # the figures above still answer the question; never lose them to a chart failure
        log.exception("rendering the statistics chart failed")
        image = None
    return [Reply("\n".join(lines), image_png=image)]


STATS = CommandSpec(
    "stats", ("统计", "图表", "统计图"), handle_stats, usage="统计", summary="各单位隐患统计（文字加图表）",
    help=HELP_STATS,
)
