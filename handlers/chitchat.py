"""谢谢 / 收到 / 好的 / 👍: one friendly line, never a hazard and never the template."""

from __future__ import annotations

from handlers.command import Command, CommandSpec
from handlers.context import Context
from handlers.messages import Reply

HELP = "谢谢、收到、好的、辛苦了 这类话不用回复；有隐患随时@我。"
_THANKS = ("谢", "辛苦", "感谢")


def handle_chat(command: Command, context: Context) -> list[Reply]:
    """Answer a thank-you or an acknowledgement with one short line."""
    return [Reply("不客气，有隐患随时@我。")]


SPEC = CommandSpec(
    "chat", ("谢谢", "收到", "辛苦了"), handle_chat, usage="谢谢", summary="", help=HELP, everyday=False,
)
