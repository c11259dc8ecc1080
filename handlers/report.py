"""隐患: a teacher reports a hazard; the bot numbers it (#N), stores it and echoes what it understood.

The steps (unit, 部位/问题, 责任人, 期限, duplicates) and the drafts of doubtful reports are in `handlers.intake`.
"""

from __future__ import annotations



from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.intake import (
    Doubt,
    Item,
    Refusal,
    alerts,
    assess,
    doubt_reply,
    drop_earlier_drafts,
    item_line,
    keep_as_drafts,
    register,
    registered_reply,
)
from handlers.messages import Outcome, Reply

HELP = """上报隐患：@安全助手 后发送（每项一行，也可用「，」「；」隔开）
隐患
部位：3号教学楼二楼东侧
问题：消防通道堆放杂物
类别：消防（可不写，自动判断）
等级：一般（或 重大）
责任人：王建国
期限：12月10日（也可写 本周五、3天内、月底）
可选：单位、整改措施、检查内容、立即整改：是/否、停用：是/否；可附现场照片。
一条消息报多处：每处一行，前面写 1. 2.（或 ①②），回复「确认」一起登记。"""


def handle_report(command: Command, context: Context) -> list[Reply] | Outcome:
    """Register what is certain at once; keep a doubtful report (or several in one message) as a draft and ask."""
    items = [Item.from_command(part) for part in (command.items or [command])]
    if len(items) > 1:
        return _take_several(items, context)
    return _take_one(items[0], context)


def _take_one(item: Item, context: Context) -> list[Reply] | Outcome:
    """One hazard: refused, asked about (a draft), or numbered and stored; a 重大 one also alerts the leaders."""
    assessment = assess(item, context)
    if isinstance(assessment, Refusal):
        return [assessment.reply]
    if isinstance(assessment, Doubt):
        keep_as_drafts([item], context)
        return [doubt_reply(item, assessment, context)]
    replaced = drop_earlier_drafts(context)  # a report sent again in full replaces the one asked about
    done = register(item, assessment, context)  # takes the school's number: last, since it is held until COMMIT
    reply = registered_reply(done, context, plain=item.plain)
    if replaced:
        reply = Reply(f"{reply.text}\n（刚才等您确认的那条已作废。）", mentions=reply.mentions)
    return Outcome([reply], effects=alerts([done]))


def _take_several(items: list[Item], context: Context) -> list[Reply]:
    """Several hazards in one message: each a draft, shown together; 确认 registers them all (each its number)."""
    lines: list[str] = []
    kept: list[Item] = []
    for index, item in enumerate(items, 1):
        assessment = assess(item, context)
        if isinstance(assessment, Refusal):
            lines.append(f"{index}. 不能登记：{assessment.reply.text.splitlines()[0]}")
            continue
        kept.append(item)
        lines.append(item_line(index, item, assessment))
    if not kept:
        return [Reply("\n".join(["这条消息里的隐患都不能登记：", *lines]))]
    keep_as_drafts(kept, context)
    minutes = context.policy.draft_minutes
    return [Reply("\n".join([
        f"这条消息里有{len(items)}条隐患，还没有登记：",
        *lines,
        f"回复「确认」一起登记这{len(kept)}条（每条各得一个编号）；回复「取消」放弃。{minutes}分钟内有效。",
    ]))]


SPEC = CommandSpec(
    "report",
    ("隐患", "上报", "报告", "隐患上报", "上报隐患", "报告隐患", "隐患报告", "发现隐患", "报隐患", "新隐患", "重大隐患",
     "一般隐患"),
    handle_report,
    usage="隐患", summary="上报隐患（可附照片）", help=HELP, example_tail=" 部位：3号教学楼二楼东侧，问题：消防通道堆放杂物",
)
