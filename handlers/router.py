"""Dispatch a parsed command to its handler, as listed in the command table (`handlers.commands`)."""

from __future__ import annotations

from handlers import help as help_module
from handlers.command import Command
from handlers.commands import COMMANDS_BY_NAME
from handlers.context import Context
from handlers.messages import Reply


def dispatch(command: Command, context: Context) -> list[Reply]:
    """Run the handler for a parsed command, or answer a malformed one with its help."""
    if command.command is None or command.errors:
        return [help_module.error_reply(command, COMMANDS_BY_NAME)]
    return COMMANDS_BY_NAME[command.command].handler(command, context)
