"""逾期: the open hazards of the sender's units that are past their deadline (清单, narrowed)."""

from __future__ import annotations

from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.messages import Reply
from handlers.views import handle_list

HELP = "查看本单位已过期限、还没整改的隐患：逾期（部门负责人可写 逾期 单位：总务基建处）"


def handle_overdue(command: Command, context: Context) -> list[Reply]:
    """逾期 [单位：X]: like 清单, but only what is past its deadline and not yet rectified."""
    return handle_list(command, context, overdue_only=True)


SPEC = CommandSpec(
    "overdue", ("逾期", "逾期隐患", "逾期清单"), handle_overdue,
    usage="逾期", summary="本单位已逾期的隐患", help=HELP,
)
