"""报送: a unit submits this reporting period's statistics (每10天报送一次统计报表)."""

from __future__ import annotations

import json


from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.directory import scope_words, unit_names
from handlers.format import fmt_date
from handlers.messages import Reply
from handlers.periods import period_for
from models.ledger import descendants, total_figures, unit_figures
from models.queries_ledger import submission, submitted_periods
from models.tables import PersonRow, Submission, UnitRow

HELP = "报送本期统计报表（部门负责人、安全员或校领导）：报送"


def handle_submit(command: Command, context: Context) -> list[Reply]:
    """Record the unit's 报送 for the current period with the figures it covers."""
    session, person, campaign = context.session, context.person, context.campaign
    if not person.role_set & permissions.SUBMIT_ROLES:
        return [Reply("报送由部门负责人、安全员或校领导提交。请联系本部门负责人发「报送」。")]
    unit_id = permissions.scope_root(session, person) or person.unit_id
    chat = permissions.chat_scope(context)
    if chat is not None and unit_id not in chat:
        return [Reply(
            f"您的单位不属于{scope_words(context)}，不能在这里报送。请在本单位的工作群或与我私聊时发送：报送"
        )]
    unit = session.get(UnitRow, unit_id)
    unit_name = unit.name if unit else unit_id
    submitted = submitted_periods(session, campaign.id, unit_id)
    period = period_for(campaign, context.today, submitted=submitted)
    if period is None:
        return [Reply(f"「{campaign.name}」没有需要报送的统计期（报送周期未配置或已结束）。")]
    existing = submission(session, campaign.id, unit_id, period.due)
    if existing is not None:
        who = session.get(PersonRow, existing.person_id)
        when = existing.at.astimezone(context.now.tzinfo)
        return [Reply(f"{unit_name}本期（{fmt_date(period.due)}）已由{who.name if who else existing.person_id}于{when:%m-%d %H:%M}报送，无需重复报送。")]

    since, until = period.bounds(context.tz)
    units = descendants(session, [unit_id])
    figures = total_figures(
        unit_figures(session, campaign_id=campaign.id, unit_ids=units, today=context.today, since=since, until=until).values()
    )
    payload = {
        "found": figures.found, "rectified": figures.rectified, "closed": figures.closed,
        "outstanding": figures.outstanding, "overdue": figures.overdue, "major": figures.major,
    }
    session.add(
        Submission(
            campaign_id=campaign.id, unit_id=unit_id, period_due=period.due, person_id=person.id,
            at=context.now, figures=json.dumps(payload, ensure_ascii=False),
        )
    )
    names = unit_names(session, [unit_id])
    late = period.due < context.today
    text = (
        f"{names.get(unit_id, unit_name)}已{'补报' if late else '报送本期'}统计"
        f"（{period.start:%m-%d}至{period.due:%m-%d}）：\n"
        f"新发现{figures.found}｜已整改{figures.rectified}｜已销号{figures.closed}\n"
        f"未销号{figures.outstanding}｜逾期{figures.overdue}｜重大{figures.major}\n"
        f"报送人：{person.name}，{context.now:%m-%d %H:%M}"
    )
    upcoming = period_for(campaign, context.today)
    if late and upcoming is not None:
        text += f"\n下一期截至{fmt_date(upcoming.due)}，届时请再发「报送」。"
    return [Reply(text)]


SPEC = CommandSpec("submit", ("报送",), handle_submit, usage="报送", summary="提交本期统计报表", help=HELP)
