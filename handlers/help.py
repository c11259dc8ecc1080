"""帮助: the command overview, per-command templates, and replies for input we cannot take."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from handlers.command import Command
from handlers.context import Context
from handlers.format import first_items
from handlers.messages import Reply
from models.tables import PersonRow

if TYPE_CHECKING:
    from handlers.router import Route

HELP = "帮助：发「帮助」看全部命令，发「帮助 销号」看某个命令的写法。"
ERRORS_SHOWN = 5  # a message with thousands of mistakes gets one short reply, not hundreds of messages

OVERVIEW = """安全助手能做这些（@我 后发送）：
· 隐患 —— 上报隐患（可附照片）
· 整改 #编号 说明 —— 整改完成，等待验收
· 进展 #编号 说明 —— 记录整改进展
· 销号 #编号 —— 验收通过并销号
· 退回 #编号 原因 —— 验收不通过，退回整改
· 延期 #编号 日期 原因 —— 调整整改期限
· 撤销 #编号 —— 撤回误报
· 重开 #编号 原因 —— 管理员重开误销号的隐患
· 查看 #编号 —— 详情和处理记录
· 我的 / 清单 —— 我的待办 / 本单位未销号隐患
· 检查 部位：… 结果：无隐患 —— 记录已检查无隐患的部位
· 报送 —— 提交本期统计报表
· 统计 / 台账 / 进度 —— 统计 / 台账 / 活动进度
上报示例：
隐患
部位：3号教学楼二楼东侧
问题：消防通道堆放杂物
责任人：王建国
期限：12月10日
发「帮助 命令名」查看详细写法，例如：帮助 延期"""


def handle_help(command: Command, context: Context) -> list[Reply]:
    """帮助 [命令]"""
    from handlers.router import ROUTES_BY_COMMAND

    if command.help_topic and command.help_topic in ROUTES_BY_COMMAND:
        return [Reply(ROUTES_BY_COMMAND[command.help_topic].help)]
    return [Reply(OVERVIEW)]


def error_reply(command: Command, routes: Mapping[str, "Route"]) -> Reply:
    """Say what was wrong, then show the template of the command the person meant."""
    lines = first_items(list(command.errors), ERRORS_SHOWN) or ["没看懂这条消息。"]
    if len(set(command.errors)) > ERRORS_SHOWN:  # the last line says how many were left out
        lines[-1] += "，请先改正以上几处，再重新发送。"
    if command.command is not None and command.command in routes:
        lines += ["", "正确写法：", routes[command.command].help]
    else:
        lines += ["", "发「帮助」查看全部命令。上报隐患示例：", routes["report"].help]
    return Reply("\n".join(lines))


def unknown_person_reply(session: Session, *, sender_name: str) -> Reply:
    """The sender is not in the config: ask an admin to add them, naming who the admins are."""
    admins = [
        person.name
        for person in session.exec(select(PersonRow).where(PersonRow.active == True))  # noqa: E712
        if "admin" in person.role_set
    ]
    who = "、".join(admins) if admins else "管理员"
    return Reply(
        f"您好{('，' + sender_name) if sender_name else ''}！您还不在安全助手的人员名单里，暂时不能使用。"
        f"请联系{who}在配置文件的 [[people]] 中添加您（姓名、所在单位、角色、企业微信/钉钉账号），添加后即可使用。"
    )


def no_campaign_reply() -> Reply:
    return Reply("目前没有进行中的排查整治活动，无法登记。请联系管理员在配置文件的 [[campaigns]] 中添加活动。")
