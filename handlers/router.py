"""The one ordered route table: command name → handler. Each handler returns its replies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from handlers import check, help as help_module, lifecycle, report, stats, submit, views
from handlers.command import Command
from handlers.context import Context
from handlers.messages import Reply

Handler = Callable[[Command, Context], list[Reply]]


@dataclass(frozen=True, slots=True)
class Route:
    command: str
    handler: Handler
    help: str  # the help template shown for this command (lives next to the handler)


ROUTES: tuple[Route, ...] = (
    Route("report", report.handle_report, report.HELP),
    Route("rectify", lifecycle.handle_rectify, lifecycle.HELP_RECTIFY),
    Route("progress", lifecycle.handle_progress, lifecycle.HELP_PROGRESS),
    Route("close", lifecycle.handle_close, lifecycle.HELP_CLOSE),
    Route("reject", lifecycle.handle_reject, lifecycle.HELP_REJECT),
    Route("extend", lifecycle.handle_extend, lifecycle.HELP_EXTEND),
    Route("withdraw", lifecycle.handle_withdraw, lifecycle.HELP_WITHDRAW),
    Route("reopen", lifecycle.handle_reopen, lifecycle.HELP_REOPEN),
    Route("show", views.handle_show, views.HELP_SHOW),
    Route("mine", views.handle_mine, views.HELP_MINE),
    Route("list", views.handle_list, views.HELP_LIST),
    Route("check", check.handle_check, check.HELP),
    Route("submit", submit.handle_submit, submit.HELP),
    Route("stats", stats.handle_stats, stats.HELP_STATS),
    Route("export", stats.handle_export, stats.HELP_EXPORT),
    Route("progress_report", views.handle_progress_report, views.HELP_PROGRESS_REPORT),
    Route("help", help_module.handle_help, help_module.HELP),
)

ROUTES_BY_COMMAND: dict[str, Route] = {route.command: route for route in ROUTES}


def dispatch(command: Command, context: Context) -> list[Reply]:
    """Run the handler for a parsed command, or answer a malformed one with its help."""
    if command.command is None or command.errors:
        return [help_module.error_reply(command, ROUTES_BY_COMMAND)]
    return ROUTES_BY_COMMAND[command.command].handler(command, context)
