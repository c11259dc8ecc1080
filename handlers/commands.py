"""The one ordered table of chat commands.

Every command is a `CommandSpec` declared next to its handler; this tuple lists them. The parser's vocabulary,
the 帮助 overview and per-command help, and the routes are all derived from it, so a new command is one handler
module and one entry here. The order is the order of the 帮助 overview.
"""

from __future__ import annotations

from handlers import (
    check, chitchat, exports, help as help_module, lifecycle, overdue, report, stats, submit, transfer, views,
)
from handlers import drafts
from handlers import join  # new people and groups bound in chat
from handlers import lookback  # 回头看 (issue 16)
from handlers.command import CommandSpec

_HANDLED: tuple[CommandSpec, ...] = (
    report.SPEC,
    lifecycle.RECTIFY,
    lifecycle.PROGRESS,
    lifecycle.CLOSE,
    lifecycle.REJECT,
    lifecycle.EXTEND,
    transfer.SPEC,
    lifecycle.WITHDRAW,
    lifecycle.REOPEN,
    views.SHOW,
    views.MINE,
    views.LIST,
    overdue.SPEC,
    check.SPEC,
    submit.SPEC,
    stats.STATS,
    exports.EXPORT,
    views.PROGRESS_REPORT,
    lookback.RECHECK,  # 回头看 (issue 16): 复查, 覆盖, 清零, 档案, 三看
    lookback.COVERAGE,
    lookback.ZERO,
    lookback.ARCHIVE,
    lookback.THREE_LOOKS,
    chitchat.SPEC,
    drafts.CONFIRM,
    drafts.CANCEL,
    drafts.NEW,
    drafts.SAME,
    join.JOIN,
    join.APPROVE,
    join.REGISTER_GROUP,
)

COMMANDS: tuple[CommandSpec, ...] = (*_HANDLED, help_module.help_spec(_HANDLED))
COMMANDS_BY_NAME: dict[str, CommandSpec] = {spec.name: spec for spec in COMMANDS}
COMMAND_NAMES: tuple[str, ...] = tuple(COMMANDS_BY_NAME)


def _check_unique(commands: tuple[CommandSpec, ...]) -> None:
    """Fail at import when two commands share a name or a word: the parser could not tell them apart."""
    names = [spec.name for spec in commands]
    words = [word.lower() for spec in commands for word in spec.words]
    for kind, values in (("name", names), ("word", words)):
        repeated = sorted({value for value in values if values.count(value) > 1})
        if repeated:
            raise ValueError(f"command {kind}s used twice in the command table: {repeated}")


_check_unique(COMMANDS)
