"""Dispatch a parsed command to its handler, as listed in the command table (`handlers.commands`)."""

from __future__ import annotations

from handlers import help as help_module
from handlers.command import Command
from handlers.commands import COMMANDS_BY_NAME
from handlers.context import Context
from handlers.messages import Outcome


def dispatch(command: Command, context: Context) -> Outcome:
    """Run the handler for a parsed command, or answer a malformed one with its help.

    Handlers return their replies, or an `Outcome` when they also ask for effects."""
    if command.command is None or command.errors:
        return Outcome([help_module.error_reply(command, COMMANDS_BY_NAME)])
    result = COMMANDS_BY_NAME[command.command].handler(command, context)
    return result if isinstance(result, Outcome) else Outcome(result)
