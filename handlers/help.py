"""帮助: the command overview, per-command templates, and replies for input we cannot take."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlmodel import Session

from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.format import first_items
from handlers.messages import Reply
from models.queries_directory import active_people

HELP = "帮助：发「帮助」看全部命令，发「帮助 销号」看某个命令的写法。"
ERRORS_SHOWN = 5  # a message with thousands of mistakes gets one short reply, not hundreds of messages

_OVERVIEW_HEAD = "安全助手能做这些（@我 后发送）："
_OVERVIEW_TAIL = """上报示例：
隐患
部位：3号教学楼二楼东侧
问题：消防通道堆放杂物
责任人：王建国
期限：12月10日
发「帮助 命令名」查看详细写法，例如：帮助 延期"""


def overview(commands: Sequence[CommandSpec]) -> str:
    """The 帮助 answer: one line per command (帮助 itself is explained at the end), then a report example."""
    lines = [f"· {spec.usage} —— {spec.summary}" for spec in commands if spec.summary]
    return "\n".join([_OVERVIEW_HEAD, *lines, _OVERVIEW_TAIL])


def help_spec(commands: Sequence[CommandSpec]) -> CommandSpec:
    """The 帮助 command, answering about `commands` and about itself.

    The table is passed in rather than imported, so this module does not depend on the table that lists it.
    """

    def handle_help(command: Command, context: Context) -> list[Reply]:
        """帮助 [命令]"""
        by_name = {known.name: known for known in (*commands, help_command)}
        if command.help_topic and command.help_topic in by_name:
            return [Reply(by_name[command.help_topic].help)]
        return [Reply(overview(commands))]

    help_command = CommandSpec(
        "help", ("帮助", "怎么用", "help", "?", "？"), handle_help, usage="帮助", summary="", help=HELP,
        example_tail=" 销号", everyday=False,
    )
    return help_command


def error_reply(command: Command, routes: Mapping[str, CommandSpec]) -> Reply:
    """Say what was wrong, then show the template of the command the person meant."""
    lines = first_items(list(command.errors), ERRORS_SHOWN) or ["没看懂这条消息。"]
    if len(set(command.errors)) > ERRORS_SHOWN:  # the last line says how many were left out
        lines[-1] += "，请先改正以上几处，再重新发送。"
    if command.command is not None and command.command in routes:
        lines.append(_short_template(routes[command.command]))
    else:
        lines.append(f"上报隐患示例：{routes['report'].example()}；发「帮助」查看全部命令")
    return Reply("\n".join(lines))


def _short_template(spec: CommandSpec) -> str:
    """The right form in one line (a reply to a mistake stays short); the full template is one 帮助 away."""
    if spec.help.count("\n") == 0:
        return f"正确写法：{spec.help}"
    return f"正确写法：{spec.example()}；完整写法请发「帮助 {spec.word}」"


def unknown_person_reply(session: Session, *, sender_name: str) -> Reply:
    """The sender is not in the config: ask an admin to add them, naming who the admins are."""
    admins = [
        person.name
        for person in active_people(session)
        if "admin" in person.role_set
    ]
    who = "、".join(admins) if admins else "管理员"
    return Reply(
        f"您好{('，' + sender_name) if sender_name else ''}！您还不在安全助手的人员名单里，暂时不能使用。"
        f"请联系{who}把您加入名单（告诉管理员您的姓名和所在单位），加入后即可使用。"
    )


def no_campaign_reply() -> Reply:
    return Reply("目前没有进行中的排查整治活动，无法登记。请联系管理员添加活动。")
