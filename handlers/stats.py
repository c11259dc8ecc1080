"""统计 and 台账: figures of the group's units (a chart snapshot and the XLSX ledger build on these)."""

from __future__ import annotations

from handlers import permissions
from handlers.command import Command
from handlers.context import Context
from handlers.directory import unit_names
from handlers.messages import Reply
from models.ledger import descendants, total_figures, unit_figures

HELP_STATS = "查看本群各单位的隐患统计：统计"
HELP_EXPORT = "导出隐患台账（Excel，格式同《问题隐患自查整改清单》）：台账"


def report_units(context: Context) -> set[str] | None:
    """The units a group's statistics cover: the group's units, within the person's scope."""
    session = context.session
    scope = permissions.scope_units(session, context.person)
    if context.group_unit_ids:
        units = descendants(session, context.group_unit_ids)
        return units if scope is None else units & scope
    return scope


def handle_stats(command: Command, context: Context) -> list[Reply]:
    """Per-unit table of found / closed / outstanding / overdue / major."""
    session = context.session
    units = report_units(context)
    figures = unit_figures(session, campaign_id=context.campaign.id, unit_ids=units, today=context.today)
    rows = sorted(
        (f for f in figures.values() if f.found or f.outstanding),
        key=lambda f: (-f.overdue, -f.outstanding, f.unit_id),
    )
    total = total_figures(figures.values())
    names = unit_names(session, [f.unit_id for f in rows])
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
    return [Reply("\n".join(lines))]


def handle_export(command: Command, context: Context) -> list[Reply]:
    """台账: the ledger as an XLSX file in the official columns."""
    from handlers.exports import ledger_reply

    return [ledger_reply(context, report_units(context))]
