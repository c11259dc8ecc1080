"""检查: record a place checked and found without hazard (不漏一楼一房)."""

from __future__ import annotations

from handlers import permissions
from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.directory import example_unit, find_building, find_unit, scope_words
from handlers.messages import Reply
from models.tables import CheckRecord

HELP = """记录已检查、无隐患的部位（用于排查全覆盖）：
检查
部位：2号教学楼三楼
检查内容：疏散通道、应急照明
结果：无隐患
发现隐患请用「隐患」上报。"""

NO_HAZARD_WORDS = ("无隐患", "无", "正常", "合格", "未发现隐患", "没有隐患", "良好")


def handle_check(command: Command, context: Context) -> list[Reply]:
    """Store a coverage record; a result that is not 'no hazard' is pointed to 隐患."""
    fields = command.fields
    if not fields.location:
        return [Reply("请写明检查的部位，例如：检查 部位：2号教学楼三楼 结果：无隐患")]
    result = (command.result or "无隐患").strip()
    if result not in NO_HAZARD_WORDS:
        return [Reply(
            f"检查结果是「{result}」？如果发现了隐患，请用「隐患」上报，例如：\n隐患\n部位：{fields.location}\n问题：{result}"
        )]
    session = context.session
    allowed = permissions.chat_scope(context)
    unit_id = context.person.unit_id
    if fields.unit:
        unit = find_unit(session, fields.unit, among=allowed)
        if unit is None:
            return [Reply(
                f"没有找到{scope_words(context)}中的「{fields.unit}」，请改正后重新发送，"
                f"例如：单位：{example_unit(context, allowed)}"
            )]
        unit_id = unit.id
    elif allowed is not None and unit_id not in allowed:
        return [Reply(
            f"您的单位不属于{scope_words(context)}，没有记录。请写明检查的部门，例如：单位：{example_unit(context, allowed)}"
        )]
    building = find_building(session, fields.location, context.policy.buildings, unit_id=unit_id)
    session.add(
        CheckRecord(
            campaign_id=context.campaign.id, unit_id=unit_id, person_id=context.person.id,
            location=fields.location, check_item=fields.check_item or "", result="无隐患",
            building_id=building.id if building else None, at=context.now,
        )
    )
    item = f"（{fields.check_item}）" if fields.check_item else ""
    return [Reply(f"已记录：{fields.location}{item} 检查无隐患。检查人：{context.person.name}，{context.now:%m-%d %H:%M}")]


SPEC = CommandSpec(
    "check", ("检查", "巡查"), handle_check,
    usage="检查 部位：… 结果：无隐患", summary="记录已检查无隐患的部位", help=HELP,
    example_tail=" 部位：3号教学楼 结果：无隐患",
)
